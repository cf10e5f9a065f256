"""``VLLMGenerator``: the ``TokenGenerator`` (token ids in, ids and behaviour log-probs out) on a vLLM engine.

Prompts go to vLLM as token ids and the sampled ids come back untouched (docs/design.md, §Token-in/token-out); rows
end as ``HFGenerator``'s do: end-of-sequence, a stop string (kept in the output, like the token that
completes it), or their own budget.

**Log-probs.** vLLM returns by default the log-probs of the *raw* logits (``logprobs_mode="raw_logprobs"``),
before temperature: at any temperature but 1 they are not those of the distribution sampled from. The
engine is therefore started with ``logprobs_mode="processed_logprobs"``: ``log_softmax(logits / temperature)``,
what ``HFGenerator`` returns and the trainer recomputes (greedy: temperature 1). The gap left: with
``top_p < 1`` vLLM's are those of the truncated, renormalised distribution, where ``HFGenerator`` and the
trainer use the untruncated one; keep ``top_p = 1`` for training. (On a GPU this mode also turns off
FlashInfer's sampling kernel; vLLM falls back to its PyTorch sampler.)

**Weight sync.** ``sync_weights(state_dict)`` pushes the trainer's current weights into the engine, so rollouts
are never sampled from a stale policy. vLLM's built-in weight-transfer backends (NCCL, CUDA IPC) need a
GPU, and ``collective_rpc`` only accepts a Python function when pickling is allowed
(``VLLM_ALLOW_INSECURE_SERIALIZATION=1``), so the engine's workers get ``WeightSyncExtension`` as vLLM's
``worker_extension_cls`` and are sent the weights as safetensors bytes, a method name and plain bytes being
all that the engine-core process's RPC carries without pickle. The workers load them with vLLM's own
in-place ``reload_weights`` (the path that also re-runs any quantization), after which the prefix cache,
whose KV entries came from the old weights, is reset. This works with vLLM's default engine-core process
and in-process alike (tested on the CPU build; nothing in it is CPU-specific).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from zerosearch_rl.generation.base import Finish, Generated
from zerosearch_rl.generation.sampling import Sampling
from zerosearch_rl.llm.vllm_chat import import_vllm, shutdown_engine, start_engine

SYNC_CHUNK_BYTES = 1 << 30
"""Weights per RPC message in ``sync_weights``: msgpack caps one bytes object at 4 GiB."""


class WeightSyncExtension:
    """Mixed into each vLLM worker (``worker_extension_cls``): receives weights as safetensors bytes.

    Chunks are staged, then loaded in one ``reload_weights`` pass: vLLM's layerwise reload only processes
    a layer once all its tensors have arrived, so one pass over every chunk is what keeps a fused layer
    (q/k/v in one matrix) whole. Method names carry a prefix so they cannot clash with the worker's own.
    """

    def zerosearch_stage_weights(self, blob: bytes) -> None:
        self.__dict__.setdefault("_zerosearch_staged", []).append(blob)

    def zerosearch_load_staged_weights(self) -> None:
        from safetensors.torch import load

        def staged() -> Iterator[tuple[str, Any]]:
            blobs: list[bytes] = self.__dict__.pop("_zerosearch_staged", [])
            while blobs:  # each chunk's bytes are freed once its tensors are read
                yield from load(blobs.pop(0)).items()

        self.reload_weights(weights_iterator=staged())  # type: ignore[attr-defined]


def weight_chunks(state: Mapping[str, Any], dtype: Any, limit: int) -> Iterator[dict[str, Any]]:
    """CPU copies of ``state``'s tensors (floating ones cast to ``dtype``), in chunks of about ``limit`` bytes."""
    chunk: dict[str, Any] = {}
    size = 0
    for name, tensor in state.items():
        # a copy: tied weights share storage, which safetensors refuses to save twice
        chunk[name] = tensor.detach().to("cpu", dtype if tensor.is_floating_point() else tensor.dtype, copy=True)
        size += chunk[name].nbytes
        if size >= limit:
            yield chunk
            chunk, size = {}, 0
    if chunk:
        yield chunk


def finish_of(output: Any) -> Finish:
    """Our finish reason for a vLLM ``CompletionOutput``: a string ``stop_reason`` is a stop string; ``None``
    (the tokenizer's EOS) or a token id (one of the generation config's other EOS ids) is ``"eos"``."""
    if output.finish_reason == "length":
        return "length"
    if output.finish_reason == "stop":
        return "stop" if isinstance(output.stop_reason, str) else "eos"
    raise RuntimeError(f"vLLM ended a request with finish_reason {output.finish_reason!r} "
                       f"(stop_reason {output.stop_reason!r}) after {len(output.token_ids)} tokens")


class VLLMGenerator:
    """``TokenGenerator`` on a ``vllm.LLM`` engine, with ``sync_weights`` to follow a policy being trained.

    ``engine_kwargs`` are ``VLLMChat``'s engine settings (``dtype``, ``max_model_len``,
    ``kv_cache_memory_bytes``, ``enforce_eager``, ``seed``, …). With ``Sampling.seed = s`` row ``i`` of a
    batch is sampled with seed ``s + i``, as in ``VLLMChat``: reproducible, and independent across the
    rows of a GRPO group that share a prompt.
    """

    def __init__(self, model: str, stop_strings: Sequence[str] = (), **engine_kwargs: Any) -> None:
        self._vllm = import_vllm("VLLMGenerator")
        self.stop_strings = tuple(stop_strings)
        self._llm: Any = start_engine(model, logprobs_mode="processed_logprobs",
                                      worker_extension_cls=f"{__name__}.WeightSyncExtension", **engine_kwargs)
        self.max_model_len: int = self._llm.model_config.max_model_len

    def generate(self, prompts: Sequence[Sequence[int]], max_new_tokens: Sequence[int],
                 sampling: Sampling) -> list[Generated]:
        if self._llm is None:
            raise RuntimeError("VLLMGenerator.generate called after close()")
        if len(prompts) != len(max_new_tokens):
            raise ValueError(f"{len(prompts)} prompts but {len(max_new_tokens)} token budgets")
        if any(len(p) == 0 for p in prompts):
            raise ValueError("every prompt needs at least one token")
        rows = [i for i, n in enumerate(max_new_tokens) if n > 0]
        for i in rows:  # vLLM would reject the whole batch; a budget past the context just ends as "length"
            if len(prompts[i]) >= self.max_model_len:
                raise ValueError(f"prompt {i} has {len(prompts[i])} tokens: no room to generate within "
                                 f"max_model_len {self.max_model_len}")
        params = [self._vllm.SamplingParams(
            temperature=sampling.temperature, top_p=sampling.top_p, max_tokens=max_new_tokens[i],
            seed=None if sampling.seed is None else sampling.seed + i, stop=list(self.stop_strings),
            include_stop_str_in_output=True, skip_special_tokens=False, logprobs=0,
        ) for i in rows]
        requests = [self._vllm.TokensPrompt(prompt_token_ids=list(prompts[i])) for i in rows]
        results = self._llm.generate(requests, params, use_tqdm=False) if rows else []
        out = [Generated([], [], "length") for _ in prompts]
        for i, result in zip(rows, results, strict=True):
            completion = result.outputs[0]
            ids = list(completion.token_ids)
            logprobs = [step[token].logprob for token, step in zip(ids, completion.logprobs, strict=True)]
            out[i] = Generated(ids, logprobs, finish_of(completion))
        return out

    def sync_weights(self, weights: Mapping[str, Any]) -> None:
        """Loads a policy's current weights (the ``state_dict()`` of a Hugging Face causal LM of the engine's
        architecture, or the gathered full weights of a sharded one) into the engine. Names must be the
        checkpoint's: merge a LoRA (peft) policy first."""
        if self._llm is None:
            raise RuntimeError("VLLMGenerator.sync_weights called after close()")
        from safetensors.torch import save

        try:
            for chunk in weight_chunks(weights, self._llm.model_config.dtype, SYNC_CHUNK_BYTES):
                self._llm.collective_rpc("zerosearch_stage_weights", args=(save(chunk),))
            self._llm.collective_rpc("zerosearch_load_staged_weights")
        except Exception as exc:
            self.close()  # a half-reloaded model has layers left on the meta device: no rollout may use it
            raise RuntimeError(
                f"vLLM could not load the weights ({str(exc)[:200]}); the engine is "
                "closed. State-dict names must be the checkpoint's: merge a LoRA (peft) policy first") from exc
        if not self._llm.reset_prefix_cache():
            raise RuntimeError("vLLM could not reset its prefix cache after the weight sync")

    def close(self) -> None:
        """Stops the engine (and its engine-core process, if any) now rather than at interpreter exit."""
        if self._llm is not None:
            shutdown_engine(self._llm)
            self._llm = None
