"""The synthetic world: deterministic files, answerable questions, differing eras, a round-tripping tokenizer."""

from __future__ import annotations

import random

import pytest

from zerosearch_rl.cli import main
from zerosearch_rl.data import load_examples, read_examples
from zerosearch_rl.protocol import build_prompt, observation_text, parse_action
from zerosearch_rl.reward import cover_em
from zerosearch_rl.search.corpus import read_corpus
from zerosearch_rl.world.build import build_world
from zerosearch_rl.world.facts import generate_world, world_size
from zerosearch_rl.world.text import SOURCES, documents, questions
from zerosearch_rl.world.traces import FORCED_SEARCH_PREFIX, AgentStyle, agent_trace
from zerosearch_rl.world.vocab import TAG_TOKENS, build_tokenizer, vocabulary_texts


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    return build_world(tmp_path_factory.mktemp("world"), "micro", seed=3)


def test_same_seed_gives_byte_identical_files_and_another_seed_another_world(micro, tmp_path):
    again = build_world(tmp_path / "again", "micro", seed=3)
    for mine, theirs in zip(micro.all(), again.all(), strict=True):
        assert mine.read_bytes() == theirs.read_bytes(), mine.name
    other = build_world(tmp_path / "other", "micro", seed=4)
    assert other.corpus.read_bytes() != micro.corpus.read_bytes()


def test_splits_hold_both_sources_in_jsonl_and_parquet(micro):
    size = world_size("micro")
    for split in ("train", "test"):
        rows = read_examples(micro.qa(split))
        assert {ex.source for ex in rows} == set(SOURCES)
        parquet = read_examples(micro.qa(split, "parquet"))
        assert [(ex.question, ex.answers) for ex in parquet] == [(ex.question, ex.answers) for ex in rows]
        assert "Question: " + rows[0].question in build_prompt(rows[0].question, None, "base")
    test = read_examples(micro.qa("test"))
    # the split is by person: each held-out person has 3 single-hop and 3 two-hop test questions, and no
    # training question starts from a held-out person
    held_out = {ex.metadata["entity"] for ex in test}
    assert len(held_out) == size.test_people and held_out <= set(generate_world("micro", seed=3).people)
    per_source = [sum(ex.source == source for ex in test) for source in SOURCES]
    assert per_source == [3 * len(held_out)] * 2
    assert not held_out & {ex.metadata["entity"] for ex in read_examples(micro.qa("train"))}
    # train and test never share a question, and ids are unique across the two files
    everything = load_examples([micro.qa("train"), micro.qa("test")])
    assert len({ex.question for ex in everything}) == len(everything)


def test_every_answer_is_in_the_era_b_document_of_the_right_entity(micro):
    docs = {d.id: d for d in read_corpus(micro.corpus).documents}
    examples = load_examples([micro.qa("train"), micro.qa("test")])
    for ex in examples:
        meta = ex.metadata
        last = docs[meta["documents"][-1]]
        assert cover_em(last.text, ex.answers), (ex.question, last.text)
        if ex.source == "two_hop":
            assert len(meta["sub_questions"]) == 2 and meta["bridge"] in meta["sub_questions"][1]
            assert meta["bridge"] in docs[meta["documents"][0]].text
            assert meta["bridge"] in meta["queries"][1]


def test_eras_share_entities_but_differ_on_some_facts():
    world = generate_world("micro", seed=3)
    a, b = documents(world, "A"), documents(world, "B")
    assert [d.id for d in a] == [d.id for d in b]
    changed = sum(x.text != y.text for x, y in zip(a, b, strict=True))
    assert 0 < changed < len(a)
    n_facts = len(world.people) * 3 + len(world.companies) * 2 + len(world.towns)
    assert 0.3 * n_facts < world.differing_facts() < 0.9 * n_facts  # drift 0.6
    stale = [ex for split in questions(world).values() for ex in split if ex.metadata["era_a_answer"] != ex.answers[0]]
    assert stale, "answering from era-A memory must be wrong for some questions"


def test_scripted_agent_writes_valid_protocol_turns(micro):
    from zerosearch_rl.search.bm25 import BM25Backend

    world = generate_world("micro", seed=3)
    engine = BM25Backend(micro.corpus, topk=3, index_dir=micro.root / "index")
    ex = next(e for e in read_examples(micro.qa("train")) if e.source == "two_hop")
    always_search = AgentStyle(memory=0.0, stop_after_one=0.0)
    runs = agent_trace(ex, world, engine, random.Random(0), always_search)
    policy = [text for text, trained in runs if trained]
    assert [parse_action(t).kind for t in policy] == ["search", "search", "answer"]
    assert parse_action(policy[1]).content == ex.metadata["queries"][1]
    assert parse_action(policy[-1]).content == ex.answers[0]
    observations = [text for text, trained in runs[1:] if not trained]
    assert len(observations) == 2 and ex.answers[0] in observations[1]
    memory = agent_trace(ex, world, engine, random.Random(0), AgentStyle(memory=1.0))
    assert parse_action(memory[-1][0]).content == ex.metadata["era_a_answer"] and len(memory) == 2


def test_tokenizer_round_trips_every_world_text_with_tags_whole():
    world = generate_world("micro", seed=3)
    texts = vocabulary_texts(world, [])
    tok = build_tokenizer(texts)
    for text in texts:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.unk_token_id not in ids, text
        assert tok.decode(ids, skip_special_tokens=True) == text
    for tag in TAG_TOKENS:
        assert len(tok(tag, add_special_tokens=False)["input_ids"]) == 1
    forced = tok(FORCED_SEARCH_PREFIX, add_special_tokens=False)["input_ids"]
    assert tok.decode(forced, skip_special_tokens=True) == FORCED_SEARCH_PREFIX  # tags survive skip_special
    assert tok("Zanzibar", add_special_tokens=False)["input_ids"] == [tok.unk_token_id]
    sample = observation_text(documents(world, "B")[:2])
    assert tok.decode(tok(sample)["input_ids"], skip_special_tokens=True) == sample


def test_tokenizer_is_saved_and_loaded_as_a_hugging_face_folder(tmp_path):
    from transformers import AutoTokenizer

    texts = vocabulary_texts(generate_world("micro", seed=3), [])
    build_tokenizer(texts).save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert loaded.decode(loaded(texts[0])["input_ids"], skip_special_tokens=True) == texts[0]
    assert getattr(loaded, "chat_template", None) is None  # the policy prompt is the plain-text base style


def test_world_build_command_writes_every_file(tmp_path, capsys):
    assert main(["world", "build", "--out", str(tmp_path), "--size", "micro", "--seed", "1"]) == 0
    assert (tmp_path / "corpus.jsonl").is_file() and (tmp_path / "test.parquet").is_file()
    assert "wrote" in capsys.readouterr().out


def test_unknown_size_names_the_valid_ones():
    with pytest.raises(ValueError, match="valid: micro, demo"):
        world_size("huge")


def test_policy_chat_template_keeps_only_the_question_line():
    from zerosearch_rl.protocol import build_prompt as render
    from zerosearch_rl.search.simulated import SFT_TEMPLATE
    from zerosearch_rl.world.vocab import SHORT_PROMPT_TEMPLATE

    tok = build_tokenizer(vocabulary_texts(generate_world("micro", seed=3), []))
    tok.chat_template = SHORT_PROMPT_TEMPLATE
    question = "Where was Zel Ravley born?"
    assert render(question, tok, "auto") == f"Question: {question}\n"
    assert render(question, tok, "base").startswith("Answer the question below.")
    sft = SFT_TEMPLATE.format(kind="useful", Kind="Useful", question=question, answer="x", query="q")
    assert tok.apply_chat_template([{"role": "user", "content": sft}], tokenize=False) == sft
