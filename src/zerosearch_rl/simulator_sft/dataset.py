"""Step 3: the SFT set, JSONL rows ``{id, prompt, completion, label, query, question, answers, example_id}``.

``prompt`` is exactly what the ``simulate_sft`` engine sends (``build_simulator_prompt(..., "sft")``, the
prompt of the released ZeroSearch simulators) for the page's label; ``completion`` is the real engine's
documents as ``Doc N: …`` lines, which ``parse_documents`` reads back. A share of the *questions* is held
out (with every page of theirs) for ``sim score``, so the simulator is scored on questions it never saw.

Noisy pages come from the judge (``noisy_pages="judged"``, ZeroSearch's way: pages of searches that did
not find the answer) or are *swapped* in (``"swapped"``): each useful page also yields a noisy pair whose
completion is the real page of another query, one without this page's answer. Swapping is for engines
that rarely fail: when the same query returns the same documents whether the question was answered or
not, judged noisy pages teach the simulator nothing about the word "noisy" in its prompt (it learns
query -> documents and ignores the mode); swapped pages give every query a useful and a noisy target.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zerosearch_rl.config import NOISY_PAGES, ConfigError
from zerosearch_rl.data import DataError
from zerosearch_rl.records import SearchRequest
from zerosearch_rl.reward import normalize_answer
from zerosearch_rl.search.simulated import build_simulator_prompt
from zerosearch_rl.simulator_sft.records import SearchRecord, page_text, read_records, write_records


def request_of(record: SearchRecord, noisy: bool) -> SearchRequest:
    """The search request a simulator answers for this page, asking for ``noisy`` or useful documents."""
    return SearchRequest(query=record.query, question=record.question, answers=record.answers, noisy=noisy,
                         sample_id=record.unit, turn=record.turn)


def sft_row(record: SearchRecord) -> dict[str, Any]:
    """One prompt/completion pair: the simulator prompt for the page's label, the engine's documents."""
    return {"id": record.id, "prompt": build_simulator_prompt(request_of(record, record.noisy), "sft"),
            "completion": page_text(record.documents), "label": record.label, "query": record.query,
            "question": record.question, "answers": list(record.answers), "example_id": record.example_id}


def split_questions(records: Sequence[SearchRecord], share: float, seed: int = 0) -> set[str]:
    """The example ids held out: ``share`` of the distinct questions (at least one when share > 0)."""
    ids = sorted({r.example_id for r in records})
    if share <= 0:
        return set()
    if len(ids) < 2:
        raise DataError(f"cannot hold out {share:.0%} of the questions: the labelled pages come from {len(ids)} "
                        f"question(s); collect more, or set sim.heldout_share=0")
    random.Random(seed).shuffle(ids)
    n = min(len(ids) - 1, max(1, round(share * len(ids))))
    return set(ids[:n])


@dataclass(frozen=True)
class SFTSet:
    path: Path
    heldout_path: Path | None
    rows: int
    heldout: int
    labels: dict[str, int]

    def summary(self) -> str:
        held = f"; {self.heldout} held-out pages -> {self.heldout_path}" if self.heldout_path else ""
        dist = ", ".join(f"{k} {v}" for k, v in sorted(self.labels.items()))
        return f"SFT set: {self.rows} prompt/completion pairs ({dist}) -> {self.path}{held}"


def swap_noisy(useful: Sequence[SearchRecord], seed: int = 0) -> list[SearchRecord]:
    """A noisy twin of every useful page: same query and question, the documents of another page that holds
    none of its answers (normalized substring, as ``cover_em``; seeded choice; no partner, no twin)."""
    rng = random.Random(f"swap/{seed}")
    pages = [normalize_answer(page_text(r.documents)) for r in useful]
    twins = []
    for r in useful:
        golds = [normalize_answer(a) for a in r.answers]
        partners = [i for i, o in enumerate(useful) if o.query != r.query and not any(g in pages[i] for g in golds)]
        if partners:
            other = useful[rng.choice(partners)]
            twins.append(dataclasses.replace(r, id=f"{r.id}/swapped", documents=other.documents, label="noisy"))
    return twins


def write_sft_set(labelled_path: str | Path, out_path: str | Path, heldout_path: str | Path | None = None,
                  heldout_share: float = 0.0, seed: int = 0, noisy_pages: str = "judged") -> SFTSet:
    """Write the SFT JSONL from labelled pages; with ``heldout_path``, hold out ``heldout_share`` of the questions.
    ``noisy_pages`` is ``judged`` or ``swapped`` (see the module docstring)."""
    if noisy_pages not in NOISY_PAGES:
        raise ConfigError(f"sim.noisy_pages: {noisy_pages!r} is not valid; valid: {', '.join(NOISY_PAGES)}")
    records = read_records(labelled_path, labelled=True, with_documents=True)
    if not records:
        raise DataError(f"{labelled_path}: no labelled pages to train on")
    held = split_questions(records, heldout_share, seed) if heldout_path is not None else set()
    train = [r for r in records if r.example_id not in held]
    if noisy_pages == "swapped":
        useful = [r for r in train if not r.noisy]
        train = [*useful, *swap_noisy(useful, seed)]
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for r in train:
            fh.write(json.dumps(sft_row(r), ensure_ascii=False) + "\n")
    tmp.replace(out)
    held_path = None
    if heldout_path is not None:
        held_path = write_records([r for r in records if r.example_id in held], heldout_path)
    return SFTSet(out, held_path, len(train), len(records) - len([r for r in records if r.example_id not in held]),
                  dict(Counter(str(r.label) for r in train)))


def read_sft_set(path: str | Path) -> list[dict[str, str]]:
    """The prompt/completion pairs of an SFT file; a row without a non-empty string prompt or completion is an
    error naming the file, row and field."""
    from zerosearch_rl.jsonl import iter_rows

    p = Path(path)
    if not p.is_file():
        raise DataError(f"SFT set {str(p)!r} does not exist (write it with `zerosearch sim label`)")
    rows = []
    with p.open("rb") as fh:
        for n, row in iter_rows(fh, p, DataError):
            for name in ("prompt", "completion"):
                value = row.get(name)
                if not isinstance(value, str) or not value.strip():
                    raise DataError(f"{p}: row {n}, field {name!r}: expected a non-empty string, got {value!r}")
            rows.append({"prompt": row["prompt"], "completion": row["completion"]})
    if not rows:
        raise DataError(f"{p}: the SFT set is empty")
    return rows
