"""Invented twins of the world: new entities in the world's own words, and traces that teach copying and reading."""

from __future__ import annotations

from zerosearch_rl.protocol import parse_action
from zerosearch_rl.world.facts import generate_world
from zerosearch_rl.world.invented import invented_world
from zerosearch_rl.world.text import documents
from zerosearch_rl.world.traces import FORCED_SEARCH_PREFIX, AgentStyle, invented_texts
from zerosearch_rl.world.vocab import build_tokenizer, vocabulary_texts


def test_twins_have_new_people_and_companies_and_the_same_towns():
    world = generate_world("micro", seed=3)
    twin, other = invented_world(world, 0), invented_world(world, 1)
    assert invented_world(world, 0) == twin  # seeded
    assert len(twin.people) == len(world.people) and not set(twin.people) & set(world.people)
    assert len(twin.companies) == len(world.companies) and not set(twin.companies) & set(world.companies)
    assert twin.people != other.people
    assert (twin.towns, twin.countries) == (world.towns, world.countries)
    assert twin.facts("B").town_country == world.facts("B").town_country
    assert set(twin.facts("B").employer.values()) <= set(twin.companies)


def test_twin_texts_stay_inside_the_world_vocabulary():
    world = generate_world("micro", seed=3)
    tok = build_tokenizer(vocabulary_texts(world, []))
    for k in range(3):
        for doc in documents(invented_world(world, k), "B"):
            ids = tok(" " + doc.text, add_special_tokens=False)["input_ids"]
            assert tok.unk_token_id not in ids, doc.text


def test_invented_traces_search_and_read_single_hop_questions_with_the_decision_untrained():
    world = generate_world("micro", seed=3)
    twin = invented_world(world, 0)
    runs = invented_texts(world, AgentStyle(invented_worlds=1), seed=0, topk=3)
    # every single-hop question about a twin person (3 relations) or company (2), and no two-hop one
    assert len(runs) == 3 * len(twin.people) + 2 * len(twin.companies)
    for trace in runs:
        assert sum(text.strip().startswith("<information>") for text, _ in trace) == 1
        assert trace[1] == (FORCED_SEARCH_PREFIX, False)
        trained = [text for text, on in trace if on]
        first = parse_action("<search>" + trained[0])
        assert first.kind == "search" and first.content.split(" ")[0] in trace[0][0]  # the name, copied
        assert parse_action(trained[-1]).kind == "answer"
        answer = parse_action(trained[-1]).content
        assert answer in trace[-2][0]  # read off the last information block
    assert invented_texts(world, AgentStyle(invented_worlds=0), seed=0, topk=3) == []
