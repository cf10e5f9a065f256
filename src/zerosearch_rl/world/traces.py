"""Pretraining text for the two tiny models, as token runs with a loss mask.

**Policy.** Era-A documents (its outdated knowledge) and cold-start traces of an imperfect scripted
agent, in the exact protocol format of ``rollout.Rollout`` (the prompt of ``protocol.build_prompt``
as the policy's tokenizer renders it, policy turns, ``observation_text`` blocks). The agent sometimes answers from
memory without searching (with the era-A answer: what its memory says), and on a two-hop question
sometimes stops after the first search (answering the second hop from memory). The information
blocks come from the real BM25 engine over **era B**, the very engine the policy will face, so the
agent's answers after a search are read off the documents; the loss is masked on the prompt and on
the information blocks, as in RL, so the policy learns to *read* era-B documents without memorising
them: its memory stays era A.

**Simulator.** Era-B documents, and ``Query: q`` followed by the BM25 engine's top documents as
``Doc N:`` lines (the output format of the simulator prompt), for every hop query of the world; the
SFT prompt itself is left to the simulator-SFT pipeline.
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zerosearch_rl.protocol import build_prompt, observation_text
from zerosearch_rl.records import Document, QAExample, SearchRequest
from zerosearch_rl.search.base import SearchBackend
from zerosearch_rl.world.build import write_corpus
from zerosearch_rl.world.facts import World
from zerosearch_rl.world.invented import invented_world
from zerosearch_rl.world.text import RELATIONS, SINGLE_HOP, documents, questions

THINK_MEMORY = "<think> I remember the answer. </think>\n"
THINK_SEARCH = "<think> I need to search. </think>\n"
THINK_AGAIN = "<think> I need to search again. </think>\n"
THINK_FOUND = "<think> I found the answer. </think>\n"
#: What "forced to search first" prepends to the policy's first turn (it then writes the query).
FORCED_SEARCH_PREFIX = THINK_SEARCH + "<search>"


@dataclass(frozen=True)
class AgentStyle:
    """How often the scripted agent answers from memory, and stops a two-hop search after one hop;
    how many traces per training question, and how many invented twins of the world add traces
    (``invented.py``: one full-search trace per question about a twin's people and companies)."""

    memory: float = 0.55
    stop_after_one: float = 0.5
    traces_per_question: int = 2
    invented_worlds: int = 0


#: The scripted agent on an invented twin: it cannot remember what it never saw, so it searches every hop.
ALWAYS_SEARCH = AgentStyle(memory=0.0, stop_after_one=0.0)


def search_turn(query: str) -> str:
    return f"<search> {query} </search>"


def answer_turn(answer: str) -> str:
    return f"<answer> {answer} </answer>"


def agent_trace(ex: QAExample, world: World, engine: SearchBackend, rng: random.Random,
                style: AgentStyle, tokenizer: Any = None, decided: bool = False) -> list[tuple[str, bool]]:
    """One episode of the scripted agent: (text, trained) runs, the prompt first (rendered as
    ``Rollout`` renders it for ``tokenizer``: through its chat template when it has one).

    ``decided``: the decision to search (``FORCED_SEARCH_PREFIX``) is given, not trained, so that
    traces added to teach copying and reading do not also teach searching more often than ``style``
    says (the base policy's greedy choice must stay answering from memory).
    """
    runs: list[tuple[str, bool]] = [(build_prompt(ex.question, tokenizer, "auto"), False)]
    meta = ex.metadata
    if rng.random() < style.memory:
        return [*runs, (THINK_MEMORY + answer_turn(meta["era_a_answer"]), True)]
    queries = list(meta["queries"])
    first = THINK_SEARCH + search_turn(queries[0])
    if decided:
        runs += [(FORCED_SEARCH_PREFIX, False), (first[len(FORCED_SEARCH_PREFIX):], True)]
    else:
        runs.append((first, True))
    runs.append((observation_text(_search(engine, queries[0], ex)), False))
    if len(queries) > 1:
        if rng.random() < style.stop_after_one:
            second = RELATIONS[meta["relations"][1]]
            return [*runs, (THINK_FOUND + answer_turn(second.value(world.facts("A"), meta["bridge"])), True)]
        runs.append((THINK_AGAIN + search_turn(queries[1]), True))
        runs.append((observation_text(_search(engine, queries[1], ex)), False))
    return [*runs, (THINK_FOUND + answer_turn(ex.answers[0]), True)]


def _search(engine: SearchBackend, query: str, ex: QAExample) -> list[Document]:
    (docs,) = engine.search([SearchRequest(query=query, question=ex.question, answers=ex.answers)])
    return docs


def doc_lines(docs: Sequence[Document]) -> str:
    """Documents as the simulator writes them: ``Doc N: text`` lines."""
    return "".join(f"Doc {i}: {d.text}\n" for i, d in enumerate(docs, start=1))


def hop_queries(world: World) -> list[str]:
    """Every distinct hop query of the world (each relation's query for each entity that has it)."""
    seen: dict[str, None] = {}
    for rel in RELATIONS.values():
        for e in getattr(world, rel.subject):
            seen.setdefault(rel.query.format(e=e), None)
    return list(seen)


def policy_texts(world: World, train: Sequence[QAExample], engine: SearchBackend,
                 style: AgentStyle, seed: int, tokenizer: Any = None) -> list[list[tuple[str, bool]]]:
    """Era-A documents (fully trained) and ``style.traces_per_question`` traces per training question."""
    samples = [[(d.text, True)] for d in documents(world, "A")]
    for ex in train:
        for k in range(style.traces_per_question):
            samples.append(agent_trace(ex, world, engine, random.Random(f"trace/{seed}/{ex.id}/{k}"), style,
                                       tokenizer))
    return samples


def invented_texts(world: World, style: AgentStyle, seed: int, topk: int,
                   tokenizer: Any = None) -> list[list[tuple[str, bool]]]:
    """Search-and-read traces (the decision to search given) for every single-hop question about the
    people and companies of ``style.invented_worlds`` invented twins, each searched with BM25 over its
    own era B.

    Single-hop only: these traces teach reading, not how many searches a two-hop question needs. Full
    two-hop traces here made the base policy, once forced to search, always search twice, leaving RL
    nothing to learn on two-hop questions; that part of its imperfection must come from ``style``."""
    from zerosearch_rl.search.bm25 import BM25Backend

    samples = []
    for k in range(style.invented_worlds):
        twin = invented_world(world, k)
        with tempfile.TemporaryDirectory() as tmp:
            engine = BM25Backend(write_corpus(documents(twin, "B"), Path(tmp) / "corpus.jsonl"), topk, tmp)
            for ex in (ex for split in questions(twin).values() for ex in split):
                if ex.source == SINGLE_HOP and (ex.metadata["entity"] in twin.people
                                                or ex.metadata["entity"] in twin.companies):
                    rng = random.Random(f"trace/{seed}/invented/{k}/{ex.id}")
                    samples.append(agent_trace(ex, twin, engine, rng, ALWAYS_SEARCH, tokenizer, decided=True))
    return samples


def simulator_texts(world: World, engine: SearchBackend) -> list[list[tuple[str, bool]]]:
    """Era-B documents and (query -> engine documents) pages, all trained, each ending a sequence."""
    samples = [[(d.text, True)] for d in documents(world, "B")]
    queries = hop_queries(world)
    pages = engine.search([SearchRequest(query=q) for q in queries])
    samples += [[(f"Query: {q}\n{doc_lines(docs)}", True)] for q, docs in zip(queries, pages, strict=True)]
    return samples


def encode_runs(tokenizer: Any, runs: Sequence[tuple[str, bool]], eos: bool) -> tuple[list[int], list[int]]:
    """Token ids and loss mask of one sample; each run is tokenized on its own, as the rollout does.

    The first run gets the tokenizer's special tokens (as ``Rollout.prompt_ids``); ``eos`` appends
    the end-of-sequence token, trained (the simulator must learn where a page ends).
    """
    ids: list[int] = []
    mask: list[int] = []
    for i, (text, trained) in enumerate(runs):
        run = list(tokenizer(text, add_special_tokens=i == 0)["input_ids"])
        ids += run
        mask += [int(trained)] * len(run)
    if eos:
        ids.append(tokenizer.eos_token_id)
        mask.append(1)
    return ids, mask
