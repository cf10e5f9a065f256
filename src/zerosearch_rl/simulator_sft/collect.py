"""Step 1 of simulator fine-tuning: record every search a collector makes against a real engine.

A *collector* is a small strategy object that, given a batch of training questions and an engine,
returns one ``CollectedUnit`` (a trajectory: its searches, final answer and score) per unit of work:

* ``ScriptedCollector`` searches the question itself, then each of its sub-questions, taken from
  ``QAExample.metadata["sub_questions"]`` (a list of strings; FanOutQA-style decompositions and the
  tiny world fill it), then each keyword query of ``metadata["queries"]`` (the form a search policy
  writes, e.g. ``Uma Eldson born``; the tiny world fills it). No policy, no answer: the cheapest way to
  get query/document pairs.
* ``PolicyCollector`` rolls out any policy that ``zerosearch_rl.rollout.Rollout`` can drive (a
  ``TokenGenerator``: the in-process ``HFGenerator`` or vLLM), ``samples`` trajectories per question,
  and keeps each trajectory's searches, final answer and F1 score.

``collect_searches`` writes the records one by one (``RecordWriter``), so an interrupted collection
resumes where it stopped: units whose searches are all on disk are skipped, the others are collected
again and only their missing records written. A trajectory that made no search leaves nothing on disk,
so a rerun rolls it out again; a policy sampled afresh may then search differently, and the records of
a unit cut short can mix two samples of the same question (never duplicates: ids are unique).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from zerosearch_rl.console import progress
from zerosearch_rl.data import DataError
from zerosearch_rl.generation.sampling import Sampling
from zerosearch_rl.records import Document, QAExample, SearchRequest
from zerosearch_rl.reward import extract_answer, f1
from zerosearch_rl.search.base import FAILED_DOCUMENT_ID, SearchBackend
from zerosearch_rl.simulator_sft.records import RecordWriter, SearchRecord, iter_batches

#: ``QAExample.metadata`` key holding a question's sub-questions (a list of strings), searched by the
#: scripted collector after the question itself.
SUB_QUESTIONS = "sub_questions"
#: ``QAExample.metadata`` key holding keyword queries (a list of strings), searched last by the scripted collector.
SEARCH_QUERIES = "queries"


@dataclass(frozen=True)
class CollectedSearch:
    query: str
    turn: int
    documents: tuple[Document, ...]


@dataclass
class CollectedUnit:
    """One trajectory of a collector: its searches and, for a policy, its final answer and score."""

    unit: str
    example: QAExample
    searches: list[CollectedSearch] = field(default_factory=list)
    final_answer: str | None = None
    score: float | None = None


class Collector(Protocol):
    """Issues searches for training questions; ``unit_ids`` must be stable across runs (resuming keys on them)."""

    name: str

    def unit_ids(self, example: QAExample) -> list[str]: ...

    def run(self, examples: Sequence[QAExample], engine: SearchBackend) -> list[CollectedUnit]: ...


def _strings(example: QAExample, key: str) -> list[str]:
    """``metadata[key]`` validated as a list of non-empty strings; none if the key is absent."""
    value = example.metadata.get(key, [])
    if not isinstance(value, list) or not all(isinstance(q, str) and q.strip() for q in value):
        raise DataError(f"example {example.id!r}, field {key!r}: expected a list of non-empty strings, got {value!r}")
    return [q.strip() for q in value]


def sub_questions(example: QAExample) -> list[str]:
    """The example's sub-questions (``metadata["sub_questions"]``), validated; none if the key is absent."""
    return _strings(example, SUB_QUESTIONS)


def scripted_queries(example: QAExample) -> list[str]:
    """What the scripted collector searches: the question, its sub-questions, its keyword queries (no repeats)."""
    return list(dict.fromkeys([example.question, *sub_questions(example), *_strings(example, SEARCH_QUERIES)]))


class ScriptedCollector:
    """Searches the question, each sub-question, each keyword query: one batched engine call per batch."""

    name = "scripted"

    def unit_ids(self, example: QAExample) -> list[str]:
        return [example.id]

    def run(self, examples: Sequence[QAExample], engine: SearchBackend) -> list[CollectedUnit]:
        plans = [(ex, scripted_queries(ex)) for ex in examples]
        requests = [SearchRequest(query=q, question=ex.question, answers=ex.answers, sample_id=ex.id, turn=t)
                    for ex, queries in plans for t, q in enumerate(queries)]
        pages = iter(engine.search(requests))
        return [CollectedUnit(ex.id, ex, [CollectedSearch(q, t, tuple(next(pages))) for t, q in enumerate(queries)])
                for ex, queries in plans]


class _Recording:
    """A search backend that remembers every (request, documents) pair it served."""

    def __init__(self, inner: SearchBackend) -> None:
        self.inner, self.name = inner, inner.name
        self.log: list[tuple[SearchRequest, list[Document]]] = []

    def search(self, requests: Sequence[SearchRequest]) -> list[list[Document]]:
        pages = self.inner.search(requests)
        self.log.extend(zip(requests, pages, strict=True))
        return pages

    def metrics(self) -> dict[str, float]:
        return self.inner.metrics()

    def close(self) -> None:
        return None  # the engine belongs to the caller


class PolicyCollector:
    """Rolls out a policy (``samples`` trajectories per question) and keeps each trajectory's searches.

    ``generator`` is any ``TokenGenerator``; ``rollout_cfg``, ``seed`` and ``prompt_style`` are those of
    ``Rollout``. The noise probability is 0: the engine is real, the noise flag means nothing to it.
    """

    name = "policy"

    def __init__(self, generator: Any, tokenizer: Any, rollout_cfg: Any, sampling: Sampling, samples: int = 1,
                 seed: int = 0, prompt_style: str = "auto") -> None:
        self.generator, self.tokenizer, self.rollout_cfg = generator, tokenizer, rollout_cfg
        self.sampling, self.samples, self.seed, self.prompt_style = sampling, samples, seed, prompt_style

    def unit_ids(self, example: QAExample) -> list[str]:
        return [f"{example.id}#{k}" for k in range(self.samples)]  # Rollout's sample ids

    def run(self, examples: Sequence[QAExample], engine: SearchBackend) -> list[CollectedUnit]:
        from zerosearch_rl.rollout import Rollout

        recording = _Recording(engine)
        rollout = Rollout(self.tokenizer, recording, self.rollout_cfg, self.seed, self.prompt_style)
        result = rollout.run(self.generator, examples, self.samples, step=0, noise_p=0.0, sampling=self.sampling)
        by_id = {ex.id: ex for ex in examples}
        units: dict[str, CollectedUnit] = {}
        for traj in result.trajectories:
            answer = extract_answer(traj.policy_text)
            units[traj.sample_id] = CollectedUnit(traj.sample_id, by_id[traj.group_id], final_answer=answer,
                                                  score=0.0 if answer is None else f1(answer, traj.answers))
        for request, docs in recording.log:
            units[request.sample_id].searches.append(CollectedSearch(request.query, request.turn, tuple(docs)))
        return list(units.values())


@dataclass(frozen=True)
class CollectReport:
    path: Path
    collector: str
    engine: str
    units: int  # units of work asked for (questions x samples)
    skipped_units: int  # already complete on disk
    written: int  # records written by this run
    resumed: int  # records found on disk when the run started
    failed_searches: int  # engine failures (on_error=document): not recorded, their unit stays incomplete
    empty_pages: int  # searches that found no document (recorded; `sim label` leaves them out)
    units_without_search: int
    seconds: float

    def summary(self) -> str:
        return (f"{self.collector} collector on {self.engine}: {self.written} records written, {self.resumed} "
                f"already on disk ({self.skipped_units} of {self.units} units complete before this run); "
                f"{self.empty_pages} empty pages, {self.failed_searches} failed searches not recorded (a rerun "
                f"retries them), "
                f"{self.units_without_search} units made no search; {self.seconds:.1f} s -> {self.path}")


def _records(unit: CollectedUnit, collector: str, engine: str) -> tuple[list[SearchRecord], int]:
    ok = [s for s in unit.searches if not any(d.id == FAILED_DOCUMENT_ID for d in s.documents)]
    ex = unit.example
    records = [SearchRecord(id=f"{unit.unit}/{s.turn}", unit=unit.unit, example_id=ex.id, question=ex.question,
                            answers=ex.answers, query=s.query, turn=s.turn, documents=s.documents,
                            searches=len(unit.searches), final_answer=unit.final_answer, score=unit.score,
                            collector=collector, engine=engine) for s in ok]
    return records, len(unit.searches) - len(ok)


def collect_searches(examples: Sequence[QAExample], collector: Collector, engine: SearchBackend,
                     out_path: str | Path, batch_size: int = 8, show_progress: bool = True) -> CollectReport:
    """Run ``collector`` over ``examples`` against ``engine``, appending records to ``out_path`` (resumable)."""
    if not examples:
        raise DataError("no questions to collect searches for: check data.train_files and data.sources")
    start = time.perf_counter()
    failed = empty = no_search = 0
    with RecordWriter(out_path) as writer:
        todo = [ex for ex in examples if not all(writer.unit_done(u) for u in collector.unit_ids(ex))]
        units = sum(len(collector.unit_ids(ex)) for ex in examples)
        skipped = units - sum(len(collector.unit_ids(ex)) for ex in todo)
        with progress(f"collect ({collector.name})", len(todo), show=show_progress) as bar:
            for batch in iter_batches(todo, batch_size):
                for unit in collector.run(batch, engine):
                    records, n_failed = _records(unit, collector.name, engine.name)
                    failed += n_failed
                    no_search += not unit.searches
                    for r in records:
                        if writer.append(r):
                            empty += not r.documents
                bar.advance(len(batch))
        return CollectReport(Path(out_path), collector.name, engine.name, units, skipped, writer.written,
                             writer.resumed, failed, empty, no_search, time.perf_counter() - start)


def build_collector(cfg: Any) -> Collector:
    """The collector named by ``sim.collector`` (``cfg`` is a full ``Config``)."""
    if cfg.sim.collector == "scripted":
        return ScriptedCollector()
    from zerosearch_rl.config import ConfigError
    from zerosearch_rl.policy import load_policy
    from zerosearch_rl.protocol import STOP_STRINGS

    if not cfg.model.policy:
        raise ConfigError("sim.collector=policy needs model.policy (the policy that searches)")
    kind = cfg.rollout.generator
    if kind == "transformers":
        from zerosearch_rl.generation.transformers import HFGenerator

        model, tokenizer = load_policy(cfg.model, cfg.trainer.seed)
        generator: Any = HFGenerator(model.eval(), tokenizer, STOP_STRINGS)
    elif kind == "vllm":
        from transformers import AutoTokenizer

        from zerosearch_rl.generation.vllm import VLLMGenerator
        from zerosearch_rl.model_paths import resolve_model

        path = resolve_model(cfg.model.policy, "model.policy")
        tokenizer = AutoTokenizer.from_pretrained(
            resolve_model(cfg.model.tokenizer, "model.tokenizer", weights=False) if cfg.model.tokenizer else path)
        generator = VLLMGenerator(path, STOP_STRINGS)
    else:
        raise ConfigError(f"sim.collector=policy: rollout.generator={kind} is not supported for collection; "
                          f"valid: transformers, vllm")
    r = cfg.rollout
    return PolicyCollector(generator, tokenizer, r, Sampling(r.temperature, r.top_p),
                           cfg.sim.samples_per_question, cfg.trainer.seed, cfg.model.prompt_style)
