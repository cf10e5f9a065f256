from __future__ import annotations

from zerosearch_rl.data import load_examples
from zerosearch_rl.engines_demo import run_demo
from zerosearch_rl.packaged_assets import asset
from zerosearch_rl.search.corpus import read_corpus


def test_demo_assets_are_valid_and_answerable_from_the_corpus():
    examples = load_examples(asset("mini_qa.jsonl"))
    corpus = read_corpus(asset("mini_corpus.jsonl"))
    text = " ".join(d.text for d in corpus.documents)
    assert {e.source for e in examples} == {"single_hop", "two_hop"}
    assert all(a in text for e in examples for a in e.answers)  # every gold answer is in the corpus


def test_demo_without_simulator_scores_the_real_engines(tmp_path):
    scores = run_demo(tmp_path, simulator=False)
    local, remote = scores
    assert local.by_source["single_hop"] == 1.0  # one search finds every single-hop answer
    assert local.by_source["two_hop"] < 1.0  # ... but not the two-hop ones: the reason to search twice
    assert (remote.containment, remote.by_source) == (local.containment, local.by_source)  # HTTP changes nothing
    assert (tmp_path / "containment.png").stat().st_size > 1000
