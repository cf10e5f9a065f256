"""Step 2: label each collected (query, documents) page **useful** or **noisy**, then balance the classes.

Three judges, chosen by ``sim.judge``:

* ``answer_in_docs``: useful when a normalized gold answer occurs in a document's title or text
  (``reward.answer_in_documents``, the same test ``sim score`` measures containment with).
* ``outcome``: useful when the trajectory that made the search answered correctly (its F1 reaches
  ``outcome_min_score``); needs records of a policy collector, which carry that score.
* ``llm``: an OpenAI-compatible judge model is asked, in our own prompt, whether the documents are
  enough to answer; a verdict that starts with neither yes nor no is counted and left out.

Pages without documents teach a simulator nothing and are left out (counted in the report). Balancing
subsamples the larger class, seeded, so a simulator sees as many useful as noisy examples.
"""

from __future__ import annotations

import random
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from zerosearch_rl.console import progress
from zerosearch_rl.data import DataError
from zerosearch_rl.llm.base import ChatLLM, Sampling
from zerosearch_rl.net import EndpointError
from zerosearch_rl.reward import answer_in_documents
from zerosearch_rl.simulator_sft.records import (
    SearchRecord,
    iter_batches,
    page_text,
    read_records,
    write_records,
)

JUDGES = ("answer_in_docs", "outcome", "llm")

JUDGE_PROMPT = (
    "You are checking the results of a web search. A user is trying to answer the question below, whose correct "
    "answer is given. Read the documents the search engine returned for the user's query and decide whether "
    "they contain enough information to answer the question correctly.\n"
    "\n"
    "Question: {question}\n"
    "Correct answer: {answer}\n"
    "Search query: {query}\n"
    "Documents:\n"
    "{documents}\n"
    "\n"
    "Do these documents contain enough information to answer the question correctly? Reply with one word: "
    "yes or no."
)

_THINK = re.compile(r"^\s*<think>.*?</think>", re.DOTALL)
_FIRST_WORD = re.compile(r"[a-z]+")


class Judge(Protocol):
    """Says, for each page, True (useful), False (noisy) or None (no verdict)."""

    name: str

    def judge(self, records: Sequence[SearchRecord]) -> list[bool | None]: ...


class AnswerInDocsJudge:
    name = "answer_in_docs"

    def judge(self, records: Sequence[SearchRecord]) -> list[bool | None]:
        return [answer_in_documents(r.documents, r.answers) for r in records]


class OutcomeJudge:
    name = "outcome"

    def __init__(self, min_score: float = 1.0) -> None:
        self.min_score = min_score

    def judge(self, records: Sequence[SearchRecord]) -> list[bool | None]:
        for r in records:
            if r.score is None:
                raise DataError(f"record {r.id!r} (collector {r.collector or 'unknown'}), field 'score': missing; "
                                f"judge=outcome needs the trajectory scores that sim.collector=policy records")
        return [r.score is not None and r.score >= self.min_score for r in records]


def join_answers(answers: Sequence[str]) -> str:
    """Several gold answers as one phrase of the judge's prompt (they are aliases of one answer)."""
    return ", ".join(answers) if answers else "unknown"


def judge_prompt(record: SearchRecord) -> str:
    return JUDGE_PROMPT.format(question=record.question, answer=join_answers(record.answers), query=record.query,
                               documents=page_text(record.documents))


def parse_verdict(text: str) -> bool | None:
    """True for a reply starting with yes, False for no, None otherwise (a leading <think> block is skipped)."""
    match = _FIRST_WORD.search(_THINK.sub("", text).lower())
    word = match.group(0) if match else ""
    return {"yes": True, "no": False}.get(word)


class LLMJudge:
    """Asks a chat model (any ``ChatLLM``: an OpenAI-compatible server, an in-process model) for a verdict."""

    name = "llm"

    def __init__(self, llm: ChatLLM, max_new_tokens: int = 8) -> None:
        self.llm = llm
        self.sampling = Sampling(temperature=0.0, max_new_tokens=max_new_tokens)

    def judge(self, records: Sequence[SearchRecord]) -> list[bool | None]:
        completions = self.llm.generate([judge_prompt(r) for r in records], self.sampling)
        for c in completions:
            if not c.ok:
                raise EndpointError(f"llm judge: {c.error}")
        return [parse_verdict(c.text or "") for c in completions]


def build_judge(sim: Any) -> Judge:
    """The judge named by ``sim.judge`` (``sim`` is a ``SimConfig``)."""
    from zerosearch_rl.config import ConfigError

    if sim.judge == "answer_in_docs":
        return AnswerInDocsJudge()
    if sim.judge == "outcome":
        return OutcomeJudge(sim.outcome_min_score)
    if sim.judge == "llm":
        if not sim.judge_base_urls:
            raise ConfigError("sim.judge=llm needs sim.judge_base_urls (OpenAI-compatible URLs ending in /v1)")
        from zerosearch_rl.llm.openai_http import OpenAIChatClient
        from zerosearch_rl.net import RetryPolicy

        client = OpenAIChatClient(sim.judge_base_urls, sim.judge_model, api_key_env=sim.judge_api_key_env,
                                  concurrency=sim.judge_concurrency, timeout_s=sim.judge_timeout_s,
                                  retry=RetryPolicy(sim.judge_max_retries, sim.judge_backoff_s),
                                  system_message=None)  # not a simulator: the judge model's own default
        return LLMJudge(client, sim.judge_max_new_tokens)
    raise ConfigError(f"sim.judge: {sim.judge!r} is not valid; valid: {', '.join(JUDGES)}")


def balance(records: Sequence[SearchRecord], seed: int = 0) -> list[SearchRecord]:
    """As many useful as noisy records: the larger class is subsampled (seeded), file order is kept."""
    useful = [r for r in records if r.label == "useful"]
    noisy = [r for r in records if r.label == "noisy"]
    small, large = sorted((useful, noisy), key=len)
    keep = {r.id for r in small} | {r.id for r in random.Random(seed).sample(large, len(small))}
    return [r for r in records if r.id in keep]


@dataclass(frozen=True)
class LabelReport:
    path: Path
    judge: str
    judged: dict[str, int]  # label -> pages, before balancing
    kept: dict[str, int]  # label -> pages written
    empty_pages: int  # left out: no documents
    no_verdict: int  # left out: the judge gave no verdict
    seconds: float

    def summary(self) -> str:
        def dist(c: dict[str, int]) -> str:
            total = sum(c.values()) or 1
            return ", ".join(f"{k} {c.get(k, 0)} ({100 * c.get(k, 0) / total:.0f}%)" for k in ("useful", "noisy"))

        return (f"judge {self.judge}: judged {dist(self.judged)}; written {dist(self.kept)}; left out "
                f"{self.empty_pages} empty pages and {self.no_verdict} pages without a verdict; "
                f"{self.seconds:.1f} s -> {self.path}")


def label_records(records_path: str | Path, out_path: str | Path, judge: Judge, balance_classes: bool = True,
                  seed: int = 0, batch_size: int = 32, show_progress: bool = True) -> LabelReport:
    """Label every page of ``records_path`` with ``judge`` and write the (balanced) labelled file."""
    start = time.perf_counter()
    records = read_records(records_path)
    pages = [r for r in records if r.documents]
    labelled: list[SearchRecord] = []
    no_verdict = 0
    with progress(f"label ({judge.name})", len(pages), show=show_progress) as bar:
        for batch in iter_batches(pages, batch_size):
            for r, verdict in zip(batch, judge.judge(batch), strict=True):
                if verdict is None:
                    no_verdict += 1
                else:
                    labelled.append(r.labelled("useful" if verdict else "noisy", judge.name))
            bar.advance(len(batch))
    judged = dict(Counter(str(r.label) for r in labelled))
    if balance_classes:
        missing = [k for k in ("useful", "noisy") if not judged.get(k)]
        if missing:
            raise DataError(f"{records_path}: judge {judge.name} found no {missing[0]} page among {len(pages)}, so "
                            f"the classes cannot be balanced (collect more varied searches, or set sim.balance=false)")
        labelled = balance(labelled, seed)
    write_records(labelled, out_path)
    return LabelReport(Path(out_path), judge.name, judged, dict(Counter(str(r.label) for r in labelled)),
                       len(records) - len(pages), no_verdict, time.perf_counter() - start)
