"""Step 5: score a simulator on held-out pages, side by side with the real engine's documents.

For every held-out page the simulator is asked, with the ``simulate_sft`` prompt, for useful and for
noisy documents for the page's own query, question and gold answer. Per kind:

* document containment: share of documents holding a gold answer (``reward.answer_in_documents``);
* page containment: share of result pages with at least one such document;
* answer documents per page, documents per page, format validity (``parse_documents`` found clean
  ``Doc N:`` lines), completion tokens and latency per query.

The real engine's row uses the documents it returned for the same queries at collection time. A good
simulator's useful pages contain the answer far more often than its noisy ones; ``containment_ratio``
is useful over noisy document containment.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import mean

from zerosearch_rl.console import Bar, progress
from zerosearch_rl.data import DataError
from zerosearch_rl.llm.base import ChatLLM, Completion, Sampling
from zerosearch_rl.records import Document
from zerosearch_rl.reward import answer_in_documents
from zerosearch_rl.search.base import SearchError
from zerosearch_rl.search.simulated import build_simulator_prompt, parse_documents
from zerosearch_rl.simulator_sft.dataset import request_of
from zerosearch_rl.simulator_sft.records import SearchRecord, iter_batches


@dataclass(frozen=True)
class EngineFigures:
    """What one engine (the real one, or the simulator in one mode) returned for the held-out queries."""

    engine: str
    pages: int
    doc_containment: float
    page_containment: float
    answer_docs_per_page: float
    docs_per_page: float
    format_valid: float | None = None  # simulators only
    tokens_per_query: float | None = None
    latency_s_per_query: float | None = None


def _hits(docs: Sequence[Document], answers: tuple[str, ...]) -> list[bool]:
    """Per document (containment is counted per document as well as per page)."""
    return [answer_in_documents([d], answers) for d in docs]


def figures(engine: str, pages: Sequence[Sequence[Document]], answers: Sequence[tuple[str, ...]],
            completions: Sequence[Completion] = (), clean: Sequence[bool] = ()) -> EngineFigures:
    """The figures of one engine's pages (``completions``/``clean`` given for a simulator)."""
    hits = [_hits(p, a) for p, a in zip(pages, answers, strict=True)]
    docs = [h for page in hits for h in page]
    return EngineFigures(
        engine=engine, pages=len(pages),
        doc_containment=mean(docs) if docs else 0.0,
        page_containment=mean(any(h) for h in hits) if hits else 0.0,
        answer_docs_per_page=mean(sum(h) for h in hits) if hits else 0.0,
        docs_per_page=mean(len(p) for p in pages) if pages else 0.0,
        format_valid=mean(clean) if clean else None,
        tokens_per_query=mean(c.completion_tokens for c in completions) if completions else None,
        latency_s_per_query=mean(c.latency_s for c in completions) if completions else None,
    )


@dataclass(frozen=True)
class ScoreReport:
    model: str
    pairs: int
    rows: tuple[EngineFigures, ...]  # real engine, simulator useful, simulator noisy
    seconds: float

    def row(self, engine: str) -> EngineFigures:
        return next(r for r in self.rows if r.engine == engine)

    @property
    def containment_ratio(self) -> float:
        """Useful over noisy document containment (inf when noisy pages never contain the answer)."""
        useful, noisy = self.row("simulator useful").doc_containment, self.row("simulator noisy").doc_containment
        return useful / noisy if noisy else (float("inf") if useful else 0.0)

    def to_json(self) -> dict[str, object]:
        ratio = self.containment_ratio
        return {"model": self.model, "pairs": self.pairs, "seconds": round(self.seconds, 2),
                "containment_ratio": ratio if ratio != float("inf") else None,
                "rows": [asdict(r) for r in self.rows]}


def _simulate(llm: ChatLLM, records: Sequence[SearchRecord], noisy: bool, sampling: Sampling, topk: int,
              batch_size: int, bar: Bar) -> tuple[list[list[Document]], list[Completion], list[bool]]:
    pages: list[list[Document]] = []
    completions: list[Completion] = []
    clean: list[bool] = []
    for batch in iter_batches(records, batch_size):
        prompts = [build_simulator_prompt(request_of(r, noisy), "sft") for r in batch]
        out = llm.generate(prompts, sampling)
        for c in out:
            if not c.ok:
                raise SearchError(f"simulator under test: {c.error}")
            docs, ok = parse_documents(c.text or "", topk)
            pages.append(docs)
            clean.append(ok)
        completions.extend(out)
        bar.advance(len(batch))
    return pages, completions, clean


def score_simulator(records: Sequence[SearchRecord], llm: ChatLLM, model: str = "", topk: int = 5,
                    sampling: Sampling | None = None, batch_size: int = 8, show_progress: bool = True) -> ScoreReport:
    """Score ``llm`` as a ``simulate_sft`` engine on held-out ``records``, beside the real engine's pages."""
    if not records:
        raise DataError("no held-out pages to score on: set sim.heldout_share above 0 and rerun `zerosearch sim label`")
    sampling = sampling or Sampling(temperature=0.0, max_new_tokens=600)
    start = time.perf_counter()
    answers = [r.answers for r in records]
    rows = [figures(f"real ({records[0].engine or 'engine'})", [list(r.documents[:topk]) for r in records], answers)]
    with progress("score", 2 * len(records), show=show_progress) as bar:
        for noisy in (False, True):
            pages, completions, clean = _simulate(llm, records, noisy, sampling, topk, batch_size, bar)
            rows.append(figures(f"simulator {'noisy' if noisy else 'useful'}", pages, answers, completions, clean))
    return ScoreReport(model, len(records), tuple(rows), time.perf_counter() - start)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _num(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


HEADER = ("engine", "pages", "docs with answer", "pages with answer", "answer docs / page", "docs / page",
          "format valid", "tokens / query", "latency / query (s)")


def table_rows(report: ScoreReport) -> list[tuple[str, ...]]:
    return [(r.engine, str(r.pages), _pct(r.doc_containment), _pct(r.page_containment),
             _num(r.answer_docs_per_page), _num(r.docs_per_page), _pct(r.format_valid), _num(r.tokens_per_query, 1),
             _num(r.latency_s_per_query, 3)) for r in report.rows]


def markdown(report: ScoreReport) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(report)]
    ratio = report.containment_ratio
    lines += ["", f"Simulator `{report.model}` on {report.pairs} held-out pages; useful/noisy document containment "
                  f"ratio: {'inf' if ratio == float('inf') else f'{ratio:.2f}'}."]
    return "\n".join(lines) + "\n"


def plot(report: ScoreReport, path: str | Path) -> Path:
    """Bar chart: document and page containment per engine."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r.engine for r in report.rows]
    x = range(len(names))
    fig, ax = plt.subplots(figsize=(7, 3.4))
    ax.bar([i - 0.2 for i in x], [100 * r.doc_containment for r in report.rows], 0.4, label="documents with answer",
           color="#4c72b0")
    ax.bar([i + 0.2 for i in x], [100 * r.page_containment for r in report.rows], 0.4, label="pages with answer",
           color="#dd8452")
    ax.set_xticks(list(x), names)
    ax.set_ylim(0, 100)
    ax.set_ylabel("%")
    ax.set_title(f"Answer containment on {report.pairs} held-out queries")
    ax.legend(fontsize=8)
    fig.tight_layout()
    target = Path(path)
    fig.savefig(target, dpi=120)
    plt.close(fig)
    return target


def write_score(report: ScoreReport, out_dir: str | Path) -> dict[str, Path]:
    """``score.json``, ``score.md`` and ``score.png`` in ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "score.json", "markdown": out / "score.md", "png": out / "score.png"}
    paths["json"].write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
    paths["markdown"].write_text(markdown(report), encoding="utf-8")
    plot(report, paths["png"])
    return paths
