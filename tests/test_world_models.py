"""The world's tiny models: pretraining lowers the loss, is bit-reproducible; the measurements behave."""

from __future__ import annotations

import pytest

from zerosearch_rl.data import read_examples
from zerosearch_rl.generation.base import ForcedFirstTurn, Generated
from zerosearch_rl.generation.sampling import Sampling
from zerosearch_rl.world.build import build_world
from zerosearch_rl.world.measure import bm25_hits


class Echo:
    """Returns ``[len(prompt)]`` as the one generated token, and remembers the prompts."""

    def __init__(self) -> None:
        self.calls: list[list[list[int]]] = []

    def generate(self, prompts, max_new_tokens, sampling):
        self.calls.append([list(p) for p in prompts])
        return [Generated([len(p)], [-0.5], "stop") for p in prompts]


def test_forced_first_turn_prefixes_only_the_first_generation():
    inner = Echo()
    forced = ForcedFirstTurn(inner, [7, 8])
    first = forced.generate([[1, 2], [3]], [10, 10], Sampling(temperature=0.0))
    assert inner.calls[0] == [[1, 2, 7, 8], [3, 7, 8]]
    assert first[0].token_ids == [7, 8, 4] and first[0].logprobs == [0.0, 0.0, -0.5]
    second = forced.generate([[1, 2, 7, 8, 4]], [10], Sampling(temperature=0.0))
    assert inner.calls[1] == [[1, 2, 7, 8, 4]] and second[0].token_ids == [5]


def test_bm25_finds_the_right_document_for_every_hop_query(tmp_path):
    from zerosearch_rl.search.bm25 import BM25Backend

    files = build_world(tmp_path, "micro", seed=0)
    engine = BM25Backend(files.corpus, topk=3, index_dir=tmp_path / "index")
    examples = read_examples(files.qa("test")) + read_examples(files.qa("train"))
    hits = bm25_hits(engine, examples)
    assert set(hits) == {"single", "hop1", "hop2"}
    for kind, h in hits.items():
        assert h["top_k"] == 1.0, (kind, h)


@pytest.mark.slow
def test_micro_pretraining_lowers_the_loss_and_rebuilds_bit_for_bit(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from zerosearch_rl.world.models import build_models

    first = build_models(tmp_path / "a", "micro", seed=0)
    build_models(tmp_path / "b", "micro", seed=0)
    for name in ("policy", "simulator"):
        losses = first[name]["losses"]
        assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.5, (name, losses)
        for file in ("model.safetensors", "tokenizer.json"):
            assert (tmp_path / "a" / name / file).read_bytes() == (tmp_path / "b" / name / file).read_bytes()
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "a" / "policy")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "a" / "policy")
    assert model.config.vocab_size == len(tokenizer) == first["vocabulary"]


def test_batches_refuse_an_empty_sample_set_instead_of_spinning():
    from zerosearch_rl.world.pretrain import batches

    with pytest.raises(ValueError, match="batches need samples"):
        next(batches([], 4, 0))
    assert sorted(next(batches([([1], [1]), ([2], [1])], 2, 0))) == [0, 1]


def test_shipped_world_is_what_world_build_writes_for_the_demo_seed(tmp_path):
    """The demo's shipped world files are the output of ``zerosearch world build --size demo --seed 0``."""
    from zerosearch_rl.world.pipeline import SHIPPED

    fresh = build_world(tmp_path, "demo", seed=0)
    for path in fresh.all():
        shipped = SHIPPED / "world" / path.name
        assert shipped.read_bytes() == path.read_bytes(), f"{shipped} is stale: rerun zerosearch world pretrain"
