"""The world as text: one document per entity and era, and the questions (single-hop and two-hop).

Documents name their relation words ("born", "employer", "headquarters", "founded", "country") so
that the short queries of the scripted agent ("Arlo Brenley born", "Kalford country") find the
right document with BM25. Answers are era-B facts (the truth the engine indexes); each question
also records its era-A answer, what a policy answering from its outdated memory would say.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from zerosearch_rl.records import Document, QAExample
from zerosearch_rl.world.facts import Facts, World

SINGLE_HOP = "single_hop"
TWO_HOP = "two_hop"
SOURCES = (SINGLE_HOP, TWO_HOP)


@dataclass(frozen=True)
class Relation:
    """A fact type: who has it, how to ask for it, and the query that finds it."""

    name: str
    subject: str  # "people", "companies" or "towns"
    question: str
    query: str

    def value(self, facts: Facts, entity: str) -> str:
        return str(getattr(facts, self.name)[entity])


RELATIONS: dict[str, Relation] = {r.name: r for r in (
    Relation("birthplace", "people", "Where was {e} born?", "{e} born"),
    Relation("birth_year", "people", "When was {e} born?", "{e} born"),
    Relation("employer", "people", "Which company does {e} work for?", "{e} employer"),
    Relation("hq", "companies", "Where is {e} headquartered?", "{e} headquarters"),
    Relation("founded", "companies", "When was {e} founded?", "{e} founded"),
    Relation("town_country", "towns", "Which country is {e} in?", "{e} country"),
)}

#: Two-hop questions: (first relation, second relation, question template).
CHAINS: tuple[tuple[str, str, str], ...] = (
    ("birthplace", "town_country", "In which country was {e} born?"),
    ("employer", "hq", "Where is the employer of {e} headquartered?"),
    ("employer", "founded", "When was the employer of {e} founded?"),
    ("hq", "town_country", "In which country is {e} headquartered?"),
)


def documents(world: World, era: str) -> list[Document]:
    """One document per entity, stating its facts in ``era`` (ids are stable across eras)."""
    f = world.facts(era)
    docs = []
    for k in world.countries:
        towns = [t for t in world.towns if f.town_country[t] == k]
        listing = ", ".join(towns) if towns else "none"
        docs.append(Document(f"country-{k}", k, f"{k} is a country. Its towns are {listing}."))
    for t in world.towns:
        docs.append(Document(f"town-{t}", t, f"{t} is a town in the country of {f.town_country[t]}."))
    for c in world.companies:
        docs.append(Document(f"company-{c.replace(' ', '-')}", c,
                             f"{c} was founded in {f.founded[c]}. The headquarters of {c} are in {f.hq[c]}."))
    for p in world.people:
        docs.append(Document(f"person-{p.replace(' ', '-')}", p,
                             f"{p} was born in {f.birthplace[p]} in {f.birth_year[p]}. "
                             f"The employer of {p} is {f.employer[p]}."))
    return docs


def document_id(entity: str, world: World) -> str:
    """The id of ``entity``'s document (the one a hop about it should retrieve)."""
    for prefix, names in (("country", world.countries), ("town", world.towns), ("company", world.companies),
                          ("person", world.people)):
        if entity in names:
            return f"{prefix}-{entity.replace(' ', '-')}"
    raise KeyError(f"no entity named {entity!r} in this world")


def _single(world: World) -> list[tuple[str, str, dict]]:
    a, b = world.facts("A"), world.facts("B")
    out = []
    for rel in RELATIONS.values():
        for e in getattr(world, rel.subject):
            out.append((rel.question.format(e=e), rel.value(b, e), {
                "entity": e, "relations": [rel.name], "queries": [rel.query.format(e=e)],
                "documents": [document_id(e, world)], "era_a_answer": rel.value(a, e)}))
    return out


def _two_hop(world: World) -> list[tuple[str, str, dict]]:
    a, b = world.facts("A"), world.facts("B")
    out = []
    for first, second, template in CHAINS:
        r1, r2 = RELATIONS[first], RELATIONS[second]
        for e in getattr(world, r1.subject):
            bridge = r1.value(b, e)
            out.append((template.format(e=e), r2.value(b, bridge), {
                "entity": e, "bridge": bridge, "relations": [first, second],
                "sub_questions": [r1.question.format(e=e), r2.question.format(e=bridge)],
                "queries": [r1.query.format(e=e), r2.query.format(e=bridge)],
                "documents": [document_id(e, world), document_id(bridge, world)],
                "era_a_answer": r2.value(a, r1.value(a, e))}))
    return out


def questions(world: World) -> dict[str, list[QAExample]]:
    """``{"train": [...], "test": [...]}``, split by entity: every question whose subject is one of
    ``size.test_people`` held-out people (seeded draw) is a test question, every other one trains.

    Why by entity: a policy that saw a person's era-B facts in its training episodes could answer a test
    question about them from memory; a held-out person's era-B facts appear in no training episode,
    so test EM measures searching and reading. (The second hop of a two-hop test question may still
    name a town or company that training questions are about.) Each source is shuffled (seeded)."""
    held_out = set(random.Random(f"zerosearch-world/{world.seed}/test-people").sample(
        world.people, min(world.size.test_people, len(world.people) // 2)))
    splits: dict[str, list[QAExample]] = {"train": [], "test": []}
    makers: dict[str, Callable[[World], list[tuple[str, str, dict]]]] = {SINGLE_HOP: _single, TWO_HOP: _two_hop}
    for source, make in makers.items():
        rows = make(world)
        random.Random(f"zerosearch-world/{world.seed}/split/{source}").shuffle(rows)
        for split in ("test", "train"):
            part = [row for row in rows if (row[2]["entity"] in held_out) == (split == "test")]
            for i, (question, answer, meta) in enumerate(part):
                splits[split].append(QAExample(id=f"{source}-{split}-{i}", question=question, answers=(answer,),
                                               source=source, metadata={**meta, "split": split}))
    return splits
