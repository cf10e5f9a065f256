"""``zerosearch engines`` (`make demo-engines`): the engines side by side on a small built-in question set.

Steps: a real BM25 engine over fictional documents; the same engine served over HTTP with the
Search-R1 ``/retrieve`` protocol and queried back through ``RemoteBackend``; a simulated engine
(SmolLM2-135M-Instruct with our few-shot prompt, on the CPU) asked for useful and for noisy
documents. The score of each engine is *answer containment*: the share of result pages in which a
document contains the gold answer (``reward.answer_in_documents``). A simulator is good for ZeroSearch
when its useful pages contain the answer far more often than its noisy ones.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from statistics import mean

from zerosearch_rl.config import ServeConfig
from zerosearch_rl.data import load_examples
from zerosearch_rl.packaged_assets import asset
from zerosearch_rl.records import QAExample, SearchRequest
from zerosearch_rl.reward import answer_in_documents
from zerosearch_rl.search.base import SearchBackend


@dataclass(frozen=True)
class EngineScore:
    engine: str
    containment: float
    by_source: dict[str, float]
    pages: int
    seconds: float


def score_engine(name: str, backend: SearchBackend, examples: list[QAExample], noisy: bool = False) -> EngineScore:
    """Search every question once (the question is the query) and measure answer containment."""
    requests = [SearchRequest(query=ex.question, question=ex.question, answers=ex.answers, noisy=noisy,
                              sample_id=ex.id) for ex in examples]
    start = time.perf_counter()
    pages = backend.search(requests)
    seconds = time.perf_counter() - start
    hits = [answer_in_documents(p, ex.answers) for p, ex in zip(pages, examples, strict=True)]
    sources = sorted({ex.source for ex in examples})
    by_source = {s: mean(h for h, ex in zip(hits, examples, strict=True) if ex.source == s) for s in sources}
    return EngineScore(name, mean(hits), by_source, len(examples), seconds)


def _plot(scores: list[EngineScore], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.barh([s.engine for s in scores][::-1], [100 * s.containment for s in scores][::-1], color="#4c72b0")
    ax.set_xlim(0, 100)
    ax.set_xlabel("pages containing the gold answer (%)")
    ax.set_title("Answer containment per search engine")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_demo(out_dir: str | Path = "runs/engines", simulator: bool = True,
             limit: int | None = None) -> list[EngineScore]:
    """Run every step, print a table, write ``containment.png``; returns the scores."""
    from rich.console import Console
    from rich.table import Table

    from zerosearch_rl.search.bm25 import BM25Backend
    from zerosearch_rl.search.remote import RemoteBackend
    from zerosearch_rl.server import create_app, serve_in_thread

    console = Console()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    examples = load_examples(asset("mini_qa.jsonl"), limit=limit)
    console.print(f"[bold]1/3[/] BM25 over {asset('mini_corpus.jsonl').name}, {len(examples)} questions")
    bm25 = BM25Backend(asset("mini_corpus.jsonl"), topk=3, index_dir=out / "index")
    scores = [score_engine("bm25", bm25, examples)]

    console.print("[bold]2/3[/] the same engine behind `zerosearch serve` (Search-R1 /retrieve protocol)")
    with serve_in_thread(create_app(bm25, ServeConfig())) as url:
        remote = RemoteBackend([url], topk=3)
        scores.append(score_engine("bm25 via HTTP", remote, examples))
        remote.close()

    if simulator:
        from zerosearch_rl.console import stage
        from zerosearch_rl.llm.base import Sampling
        from zerosearch_rl.llm.transformers_chat import TransformersChat
        from zerosearch_rl.packaged_models import smollm2_instruct
        from zerosearch_rl.search.simulated import SimulatedBackend

        console.print("[bold]3/3[/] simulated engine: SmolLM2-135M-Instruct, our few-shot prompt (simulate_prompt)")
        with stage("simulated engine", out / "logs" / "simulator.log") as step:  # GGUF conversion bars to the log
            llm = TransformersChat.from_pretrained(str(smollm2_instruct()), batch_size=len(examples))
            sim = SimulatedBackend(llm, mode="prompt", topk=5,
                                   sampling=Sampling(temperature=0.0, max_new_tokens=120), prompt="own")
            scores.append(score_engine("simulated useful", sim, examples, noisy=False))
            scores.append(score_engine("simulated noisy", sim, examples, noisy=True))
            step.summary = f"{scores[-2].pages + scores[-1].pages} pages"

    sources = list(scores[0].by_source)
    table = Table("engine", "has answer", *sources, "pages", "seconds",
                  title="Search engines on the demo questions (the question is the query)")
    for s in scores:
        table.add_row(s.engine, f"{100 * s.containment:.0f}%", *(f"{100 * s.by_source[k]:.0f}%" for k in sources),
                      str(s.pages), f"{s.seconds:.1f}")
    console.print(table)
    _plot(scores, out / "containment.png")
    console.print(f"chart: {out / 'containment.png'}")
    return scores
