"""Invented twins of a world: new people and companies, named and dated only with the world's own words.

The base policy must learn two skills that no memory can replace: copying the entity's name from
the question into its query, and reading the answer off the documents. On the world's own
questions both can be faked by memorising (each training entity comes back in several questions,
and the test questions reuse them). A twin's entities are new (a real first name with a real family
name that no real person has; a real company prefix with a real sector that no real company has)
and their facts are drawn at random, so a trace about them pays only for copying and reading. The
twin keeps the world's towns and countries with their era-B facts (a town's country is the same
everywhere), and draws years only among the world's years: every text of a twin stays inside the
world's vocabulary, so the tokenizer (and the simulator built with it) is unchanged.
"""

from __future__ import annotations

import random
from dataclasses import replace

from zerosearch_rl.world.facts import Facts, World


def _recombined(rng: random.Random, names: tuple[str, ...], n: int) -> tuple[str, ...]:
    """``n`` two-word names (or as many as exist) made of a first word and a second word of ``names``,
    none of them in ``names``."""
    firsts = sorted({name.split(" ")[0] for name in names})
    seconds = sorted({name.split(" ")[1] for name in names})
    taken = set(names)
    pool = [f"{a} {b}" for a in firsts for b in seconds if f"{a} {b}" not in taken]
    return tuple(rng.sample(pool, min(n, len(pool))))


def invented_world(world: World, k: int) -> World:
    """The ``k``-th invented twin of ``world`` (as many people and companies; both eras are era B)."""
    rng = random.Random(f"zerosearch-world/{world.seed}/invented/{k}")
    people = _recombined(rng, world.people, len(world.people))
    companies = _recombined(rng, world.companies, len(world.companies))
    a, b = world.facts("A"), world.facts("B")
    founded = sorted({*a.founded.values(), *b.founded.values()})
    born = sorted({*a.birth_year.values(), *b.birth_year.values()})
    facts = Facts(town_country=dict(b.town_country))
    for company in companies:
        facts.hq[company] = rng.choice(world.towns)
        facts.founded[company] = rng.choice(founded)
    for person in people:
        facts.birthplace[person] = rng.choice(world.towns)
        facts.birth_year[person] = rng.choice(born)
        facts.employer[person] = rng.choice(companies)
    return replace(world, companies=companies, people=people, eras={"A": facts, "B": facts})
