"""The fictional world: entities, their facts in two eras, drawn from a seed.

Era ``A`` is what the base policy was pretrained on (its outdated knowledge); era ``B`` is the truth
that the search engine indexes. Both eras hold the same entities; a share of the facts (``drift``)
differs between them, so an answer from memory is often wrong and a search fixes it.

Names are built from one shared pool of syllables (family names, towns, countries and companies all
reuse it), so the vocabulary is small and shared while the facts are not. Every draw comes from
``random.Random`` seeded with a string (never the global RNG, never ``hash()``), so one seed always
gives the same world, on any machine and Python run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TypeVar

SYLLABLES = (
    "Bren", "Kal", "Vor", "Mel", "Tam", "Orl", "Gar", "Sel", "Dun", "Fen", "Hal", "Ner", "Pol", "Rav", "Sor",
    "Tor", "Val", "Wen", "Yar", "Zel", "Ard", "Cor", "Eld", "Lin",
)
FIRST_NAMES = (
    "Arlo", "Bea", "Cato", "Dara", "Elio", "Fay", "Gus", "Hana", "Ivo", "Jun", "Kira", "Leo", "Mira", "Nico",
    "Oda", "Pia", "Rex", "Sana", "Teo", "Uma", "Vik", "Wren", "Xan", "Yuna",
)
FAMILY_SUFFIXES = ("ley", "ner", "son", "ik", "ard")
TOWN_SUFFIXES = ("ford", "mouth", "wick", "dale", "holm")
COUNTRY_SUFFIXES = ("ia", "land")
SECTORS = ("Mills", "Foods", "Motors", "Textiles", "Works", "Bank")

T = TypeVar("T")


@dataclass(frozen=True)
class WorldSize:
    """How many entities of each kind, the share of facts that differ between eras, and how many people
    are held out: every question about them (single-hop and two-hop) is a test question, none trains."""

    people: int
    towns: int
    countries: int
    companies: int
    drift: float
    test_people: int


PRESETS: dict[str, WorldSize] = {
    "micro": WorldSize(people=16, towns=6, countries=3, companies=5, drift=0.6, test_people=3),
    "demo": WorldSize(people=120, towns=24, countries=6, companies=24, drift=0.6, test_people=22),
}
SIZES = tuple(PRESETS)


def world_size(name: str) -> WorldSize:
    """The preset called ``name``; an unknown name lists the valid ones."""
    if name not in PRESETS:
        raise ValueError(f"unknown world size {name!r}; valid: {', '.join(PRESETS)}")
    return PRESETS[name]


@dataclass(frozen=True)
class Facts:
    """One era's facts, keyed by entity name."""

    town_country: dict[str, str] = field(default_factory=dict)
    hq: dict[str, str] = field(default_factory=dict)
    founded: dict[str, int] = field(default_factory=dict)
    birthplace: dict[str, str] = field(default_factory=dict)
    birth_year: dict[str, int] = field(default_factory=dict)
    employer: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class World:
    """The entities (in a fixed order) and the facts of both eras."""

    seed: int
    size: WorldSize
    countries: tuple[str, ...]
    towns: tuple[str, ...]
    companies: tuple[str, ...]
    people: tuple[str, ...]
    eras: dict[str, Facts]

    def facts(self, era: str) -> Facts:
        return self.eras[era]

    def differing_facts(self) -> int:
        """How many (entity, relation) facts differ between era A and era B."""
        a, b = self.eras["A"], self.eras["B"]
        return sum(getattr(a, rel)[k] != getattr(b, rel)[k]
                   for rel in ("town_country", "hq", "founded", "birthplace", "birth_year", "employer")
                   for k in getattr(b, rel))


def _unique_names(rng: random.Random, candidates: list[str], n: int, kind: str) -> tuple[str, ...]:
    if n > len(candidates):
        raise ValueError(f"the name pool holds {len(candidates)} {kind} names, {n} were asked for")
    return tuple(rng.sample(candidates, n))


def _names(rng: random.Random, size: WorldSize) -> tuple[tuple[str, ...], ...]:
    countries = _unique_names(rng, [s + x for s in SYLLABLES for x in COUNTRY_SUFFIXES], size.countries, "country")
    towns = _unique_names(rng, [s + x for s in SYLLABLES for x in TOWN_SUFFIXES], size.towns, "town")
    companies = _unique_names(rng, [f"{s} {x}" for s in SYLLABLES for x in SECTORS], size.companies, "company")
    families = [s + x for s in SYLLABLES for x in FAMILY_SUFFIXES]
    people = _unique_names(rng, [f"{f} {s}" for f in FIRST_NAMES for s in families], size.people, "person")
    return countries, towns, companies, people


def _drifted(rng: random.Random, value: T, choices: list[T], drift: float) -> T:
    """With probability ``drift``, another value than ``value`` (era A's stale fact), else ``value``."""
    if rng.random() >= drift:
        return value
    return rng.choice([c for c in choices if c != value])


def generate_world(size: WorldSize | str, seed: int = 0) -> World:
    """The world of ``size`` drawn from ``seed``: era B first (the truth), era A drifted from it."""
    size = world_size(size) if isinstance(size, str) else size
    rng = random.Random(f"zerosearch-world/{seed}")
    countries, towns, companies, people = _names(rng, size)
    b = Facts()
    # every country holds at least one town, so "Which country is T in?" has every country as an answer
    for i, town in enumerate(towns):
        b.town_country[town] = countries[i] if i < len(countries) else rng.choice(countries)
    for company in companies:
        b.hq[company] = rng.choice(towns)
        b.founded[company] = rng.randrange(1850, 2000)
    for person in people:
        b.birthplace[person] = rng.choice(towns)
        b.birth_year[person] = rng.randrange(1940, 2000)
        b.employer[person] = rng.choice(companies)
    a = Facts()
    years_founded, years_born = list(range(1850, 2000)), list(range(1940, 2000))
    for town in towns:
        a.town_country[town] = _drifted(rng, b.town_country[town], list(countries), size.drift)
    for company in companies:
        a.hq[company] = _drifted(rng, b.hq[company], list(towns), size.drift)
        a.founded[company] = _drifted(rng, b.founded[company], years_founded, size.drift)
    for person in people:
        a.birthplace[person] = _drifted(rng, b.birthplace[person], list(towns), size.drift)
        a.birth_year[person] = _drifted(rng, b.birth_year[person], years_born, size.drift)
        a.employer[person] = _drifted(rng, b.employer[person], list(companies), size.drift)
    return World(seed, size, countries, towns, companies, people, {"A": a, "B": b})
