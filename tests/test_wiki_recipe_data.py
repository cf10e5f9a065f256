"""The real-LM recipe's data build, on the real packages (FanOutQA, the offline Wikipedia leads)."""

import json
from pathlib import Path

import pytest

from zerosearch_rl.data import read_examples
from zerosearch_rl.packaged_data import wiki_vital_titles
from zerosearch_rl.reward import normalize_answer
from zerosearch_rl.wiki_recipe.data import CORPUS, REPORT, TEST, TRAIN, build_data, cut_passage

pytest.importorskip("bm25s")


@pytest.mark.parametrize(("text", "words", "expected"), [
    ("One two three.", 5, "One two three."),                      # short: whole
    ("A b c. D e f. G h i j k", 8, "A b c. D e f."),              # ends at the last sentence inside
    ("A. b c d e f g h i j", 6, "A. b c d e f"),                  # the only end is before half: hard cut
    ("A b c d e\n\nf.", 9, "A b c d e f."),                       # white space collapses
])
def test_passages_end_at_a_sentence_inside_the_budget(text: str, words: int, expected: str) -> None:
    assert cut_passage(text, words) == expected


@pytest.mark.slow
def test_the_data_build_is_deterministic_and_splits_by_question(tmp_path: Path) -> None:
    first, again, other = (build_data(tmp_path / name, seed=seed) for name, seed in (("a", 0), ("b", 0), ("c", 1)))
    for name in (CORPUS, TRAIN, TEST, REPORT):
        assert (first.folder / name).read_bytes() == (again.folder / name).read_bytes(), name
    assert (first.folder / TEST).read_bytes() != (other.folder / TEST).read_bytes()

    train, test = read_examples(first.train), read_examples(first.test)
    tops = {split: {ex.metadata["top_question"] for ex in rows} for split, rows in (("train", train), ("test", test))}
    assert tops["train"] and tops["test"] and not tops["train"] & tops["test"]
    assert 0.15 < len(tops["test"]) / (len(tops["train"]) + len(tops["test"])) < 0.35
    assert len({ex.id for ex in train + test}) == len(train) + len(test)

    leads = [json.loads(line) for line in first.corpus.read_text(encoding="utf-8").splitlines()]
    assert len(leads) > 9000 and max(len(row["text"].split()) for row in leads) <= first.passage_words
    text = "".join(f" {normalize_answer(t + ' ' + x)} " for t, x in wiki_vital_titles().items())
    for ex in train + test:  # every kept answer occurs in the (whole) leads as words
        assert f" {normalize_answer(ex.answers[0])} " in text, ex
    report = json.loads((first.folder / REPORT).read_text(encoding="utf-8"))
    assert report["counts"]["test"] == first.counts["test"] and sum(first.dropped.values()) > 0
    assert all(0 < r <= 1 for split in first.recall.values() for r in split.values())
