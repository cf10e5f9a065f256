"""``model.autocast``: bf16 matrix products over float32 weights, in the policy's sampling, log-probs and update."""

from __future__ import annotations

import re

import pytest
import torch

from zerosearch_rl.config import ConfigError, load_config
from zerosearch_rl.generation.sampling import Sampling
from zerosearch_rl.generation.transformers import HFGenerator
from zerosearch_rl.policy import TokenBatch, token_logprobs
from zerosearch_rl.precision import autocast
from zerosearch_rl.tiny_models import byte_tokenizer, tiny_llama
from zerosearch_rl.trainer import Trainer


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return tiny_llama(len(byte_tokenizer()), seed=0).eval()


def batch(rows: int = 3, width: int = 24) -> TokenBatch:
    ids = torch.randint(4, 200, (rows, width), generator=torch.Generator().manual_seed(1))
    mask = torch.ones(rows, width - 1)
    return TokenBatch(ids, torch.ones_like(ids), mask, torch.zeros(rows, width - 1))


def test_none_leaves_float32_and_bf16_runs_matrix_products_in_bf16():
    a, b = torch.randn(8, 8), torch.randn(8, 8)
    with autocast("none"):
        assert (a @ b).dtype == torch.float32
    with autocast("bf16"):
        assert (a @ b).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="valid: none, bf16"):
        autocast("fp8")  # type: ignore[arg-type]


def test_bf16_log_probs_are_float32_close_to_the_float32_pass_and_not_the_same(model):
    b = batch()
    with torch.no_grad():
        exact, _ = token_logprobs(model, b)
        with autocast("bf16"):
            mixed, _ = token_logprobs(model, b)
    assert mixed.dtype == torch.float32  # the log-softmax stays float32
    assert not torch.equal(mixed, exact)  # the products did run in bf16
    assert (mixed - exact).abs().max() < 0.05
    assert next(model.parameters()).dtype == torch.float32


def test_the_generator_samples_under_its_precision(model):
    tok = byte_tokenizer()
    prompts = [[5, 6, 7, 8], [9, 10, 11]]
    greedy = Sampling(temperature=0.0)
    exact = HFGenerator(model, tok).generate(prompts, [6, 6], greedy)
    mixed = HFGenerator(model, tok, precision="bf16").generate(prompts, [6, 6], greedy)
    first = [(e.logprobs[0], m.logprobs[0]) for e, m in zip(exact, mixed, strict=True)]
    assert all(abs(e - m) < 0.05 for e, m in first)
    assert any(e != m for e, m in first)


def test_a_bf16_training_step_keeps_float32_weights_and_its_ratios_near_one(tmp_path):
    cfg = load_config("configs/smoke.yaml", [f"trainer.output_dir={tmp_path / 'run'}", "model.autocast=bf16",
                                             "algorithm.old_logprobs=recompute", "trainer.total_steps=1",
                                             "trainer.save_every=0", "rollout.max_new_tokens=8"])
    trainer = Trainer(cfg)
    before = [p.detach().clone() for p in trainer.policy.parameters()]
    try:
        metrics = trainer.step(0)
    finally:
        trainer.close()
    after = list(trainer.policy.parameters())
    assert all(p.dtype == torch.float32 for p in after)
    assert any(not torch.equal(x, y) for x, y in zip(before, after, strict=True))
    # sampled under bf16, recomputed under bf16: the importance ratio starts close to 1
    assert abs(metrics["actor/behaviour_ratio_mean"] - 1) < 0.02


def test_an_unknown_autocast_lists_the_valid_ones():
    with pytest.raises(ConfigError, match=re.escape("model.autocast: 'fp16' is not valid; valid: none, bf16")):
        load_config(None, ["model.autocast=fp16"])


def test_pretraining_under_bf16_follows_the_float32_losses_with_float32_weights():
    from zerosearch_rl.world.pretrain import TrainSpec, pretrain

    samples = [(list(range(5 + i, 25 + i)), [0] * 4 + [1] * 16) for i in range(8)]
    losses = {}
    for precision in ("none", "bf16"):
        net = tiny_llama(len(byte_tokenizer()), seed=0)
        losses[precision] = pretrain(net, samples, TrainSpec(steps=4, batch_size=4, lr=1e-3, warmup=1,
                                                             precision=precision), seed=0, pad_id=0)
        assert all(p.dtype == torch.float32 for p in net.parameters())
    assert losses["none"] != losses["bf16"]
    assert losses["bf16"] == pytest.approx(losses["none"], rel=0.02)
    assert losses["bf16"][-1] < losses["bf16"][0]
