"""Hand-made search records for the simulator fine-tuning tests."""

from __future__ import annotations

from zerosearch_rl.records import Document
from zerosearch_rl.simulator_sft import SearchRecord


def record(rid: str, docs: list[str], label: str | None = None, score: float | None = None,
           example: str = "ex") -> SearchRecord:
    """A page for "Where was Ada Kowalski born?" (gold: Marlow) whose documents have the texts ``docs``."""
    return SearchRecord(id=rid, unit=example, example_id=example, question="Where was Ada Kowalski born?",
                        answers=("Marlow",), query="Ada Kowalski birthplace", turn=0,
                        documents=tuple(Document(f"d{i}", f"T{i}", t) for i, t in enumerate(docs)), searches=1,
                        score=score, label=label)
