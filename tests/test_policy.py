"""Per-token log-probs: the shared-prefix pass must equal the plain pass, values and gradients."""

from __future__ import annotations

import pytest
import torch

from zerosearch_rl.llm.hf import enable_checkpointing
from zerosearch_rl.policy import MIN_SHARED_PREFIX, StepBatch, TokenBatch, shared_prefix_length, token_logprobs
from zerosearch_rl.tiny_models import tiny_llama

VOCAB = 300


def batch_of(rows: list[list[int]]) -> TokenBatch:
    width = max(map(len, rows))
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    attn = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        attn[i, : len(r)] = 1
    return TokenBatch(ids, attn, attn[:, 1:].float(), torch.zeros(len(rows), width - 1))


def plain(model, batch: TokenBatch, temperature: float) -> torch.Tensor:
    """The reference computation: one masked pass over whole rows."""
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, :-1].float()
    return torch.log_softmax(logits / temperature, -1).gather(-1, batch.input_ids[:, 1:, None])[..., 0]


def random_rows(prefix: int, tails: tuple[int, ...], seed: int = 0) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    head = torch.randint(0, VOCAB, (prefix,), generator=g).tolist()
    return [head + torch.randint(0, VOCAB, (n,), generator=g).tolist() for n in tails]


@pytest.mark.parametrize(("rows", "expected"), [
    (random_rows(40, (5, 9, 1, 7)), 40),
    (random_rows(40, (5,)), 0),  # one row shares nothing with anyone
    ([[1, 2, 3, 4], [1, 2, 9, 4]], 2),
    ([[1, 2, 3], [1, 2, 3, 4]], 3),  # the shorter row's padding is not part of the common prefix
    ([[5, 2], [1, 2]], 0),
])
def test_shared_prefix_length(rows, expected):
    assert shared_prefix_length(batch_of(rows)) == expected


def test_shared_prefix_pass_equals_the_plain_pass_with_gradients():
    model = tiny_llama(VOCAB).train()
    batch = batch_of(random_rows(MIN_SHARED_PREFIX + 24, (5, 9, 1, 7)))
    calls: list[tuple[int, ...]] = []
    model.register_forward_pre_hook(lambda m, a, kw: calls.append(tuple(kw["input_ids"].shape)), with_kwargs=True)
    logp, entropy = token_logprobs(model, batch, 0.7, with_entropy=True)
    assert calls == [(1, 40), (4, 9)]  # the prefix once, then only the rows' own tokens
    mask = batch.loss_mask.bool()
    (logp * batch.loss_mask).sum().backward()
    shared_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    expected = plain(model, batch, 0.7)
    (expected * batch.loss_mask).sum().backward()
    assert torch.allclose(logp[mask], expected[mask], atol=1e-5)
    for got, want in zip(shared_grads, (p.grad for p in model.parameters()), strict=True):
        assert torch.allclose(got, want, atol=1e-5)
    logits = model(input_ids=batch.input_ids).logits[:, :-1].float() / 0.7
    want_entropy = -(torch.softmax(logits, -1) * torch.log_softmax(logits, -1)).sum(-1)
    assert torch.allclose(entropy[mask], want_entropy[mask], atol=1e-5)


def test_short_prefixes_take_one_pass():
    model = tiny_llama(VOCAB)
    batch = batch_of(random_rows(MIN_SHARED_PREFIX - 1, (6, 3)))
    calls: list[int] = []
    model.register_forward_pre_hook(lambda m, a, kw: calls.append(1), with_kwargs=True)
    with torch.no_grad():
        logp, entropy = token_logprobs(model, batch)
        assert len(calls) == 1 and entropy is None
        expected = plain(model, batch, 1.0)
    assert torch.allclose(logp[batch.loss_mask.bool()], expected[batch.loss_mask.bool()], atol=1e-5)


def _grads(model) -> list[torch.Tensor]:
    out = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    return out


@pytest.mark.parametrize("grad_enabled", [True, False])
def test_gradient_checkpointing_gives_the_plain_pass(grad_enabled):
    """Under gradient checkpointing transformers drops the KV cache inside checkpointed layers (train mode,
    gradients on), so the rows' own tokens would be computed without their prefix. The log-probs and the
    gradients must still be those of the plain pass; without gradients the cache is kept and the shared
    prefix still runs once."""
    model = tiny_llama(VOCAB).train()
    enable_checkpointing(model)
    batch = batch_of(random_rows(MIN_SHARED_PREFIX + 24, (5, 9, 1, 7)))
    mask = batch.loss_mask.bool()
    calls: list[tuple[int, ...]] = []
    model.register_forward_pre_hook(lambda m, a, kw: calls.append(tuple(kw["input_ids"].shape)), with_kwargs=True)
    with torch.set_grad_enabled(grad_enabled):
        logp, _ = token_logprobs(model, batch, 0.7)
    assert calls == ([(4, 49)] if grad_enabled else [(1, 40), (4, 9)])
    with torch.no_grad():
        model.eval()
        expected = plain(model, batch, 0.7)
        model.train()
    assert float((logp.detach() - expected)[mask].abs().max()) < 1e-5
    if not grad_enabled:
        return
    (logp * batch.loss_mask).sum().backward()
    got = _grads(model)
    (getattr(model, "activation_checkpointing_disable", None) or model.gradient_checkpointing_disable)()
    (plain(model, batch, 0.7) * batch.loss_mask).sum().backward()
    for g, w in zip(got, _grads(model), strict=True):
        assert torch.allclose(g, w, atol=1e-5)


def test_a_step_batch_selects_the_same_rows_and_width_of_every_tensor():
    tokens = batch_of([[1, 2, 3, 4, 5, 6], [7, 8, 9], [10, 11, 12, 13]])  # [3, 6]: targets [3, 5]
    per_token = [torch.arange(15, dtype=torch.float32).reshape(3, 5) + 100 * k for k in range(4)]
    step = StepBatch(tokens, *per_token[:3], ref_logprobs=per_token[3])
    picked = step.select([2, 1])  # rows 2 and 1 in that order; the longest of them has 4 tokens: 3 targets
    assert picked.tokens.input_ids.tolist() == [[10, 11, 12, 13], [7, 8, 9, 0]]
    for whole, part in zip(per_token, (picked.old_logprobs, picked.advantages, picked.returns, picked.ref_logprobs),
                           strict=True):
        assert torch.equal(part, whole[[2, 1], :3])
    assert picked.values is None  # absent stays absent
