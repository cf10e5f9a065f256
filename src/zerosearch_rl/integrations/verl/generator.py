"""Our ``TokenGenerator`` (and the async per-prompt form ``Rollout.arun_one`` awaits) over veRL's server manager.

veRL's agent loops generate through ``server_manager.generate(request_id, *, prompt_ids, sampling_params)``
(``verl.workers.rollout.llm_server.LLMServerClient`` in veRL 0.9.1), which returns a ``TokenOutput`` with
``token_ids``, ``log_probs`` (when ``sampling_params["logprobs"]`` is true), ``stop_reason`` and
``extra_fields`` (``"global_steps"``: the version of the weights that generated, i.e. the number of
policy updates applied so far). Ids go in and come out: nothing is decoded and re-tokenized
(docs/design.md, §Token-in/token-out).

Stop strings: vLLM and SGLang drop a matched stop string from the output unless told otherwise, and the
rollout parses ``</search>`` / ``</answer>`` from the generated tokens, so the engine-specific "keep it"
flag is always sent. The per-turn seed our driver derives is *not* sent: with one request per sample,
one seed per turn would give every sample of a group the same continuation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol
from uuid import uuid4

from zerosearch_rl.config import ConfigError
from zerosearch_rl.generation.base import Finish, Generated
from zerosearch_rl.generation.sampling import Sampling
from zerosearch_rl.net import run_sync
from zerosearch_rl.protocol import STOP_STRINGS

# What each rollout engine needs to return the matched stop string with the tokens.
KEEP_STOP_STRING: dict[str, dict[str, Any]] = {
    "vllm": {"include_stop_str_in_output": True},
    "sglang": {"no_stop_trim": True},
}


class ServerManager(Protocol):
    """The part of veRL's ``LLMServerClient`` we use (duck-typed: veRL need not be importable)."""

    async def generate(self, request_id: str, *, prompt_ids: list[int], sampling_params: dict[str, Any],
                       **kwargs: Any) -> Any: ...


class ServerManagerGenerator:
    """Continues token-id prompts on veRL's rollout servers; remembers the weight version they report.

    ``sampling_params`` are the ones veRL hands its agent loop (temperature, top_p, top_k, logprobs, …);
    temperature and top_p are taken from the ``Sampling`` of each call, the budget becomes ``max_tokens``.
    One generator serves one trajectory: its request id keeps the trajectory on one server (prefix cache).
    """

    def __init__(self, server_manager: ServerManager, sampling_params: Mapping[str, Any], eos_ids: Iterable[int],
                 engine: str = "vllm", stop: Sequence[str] = STOP_STRINGS) -> None:
        if engine not in KEEP_STOP_STRING:
            raise ConfigError(f"unsupported veRL rollout engine {engine!r}; valid: {', '.join(KEEP_STOP_STRING)}")
        self.server, self.engine = server_manager, engine
        self.base = dict(sampling_params)
        self.eos_ids = frozenset(eos_ids)
        self.stop = list(stop)
        self.request_id = uuid4().hex
        self.weight_version: int | None = None
        self.has_logprobs = True  # false once the server returned a turn without log-probs

    def params(self, max_new_tokens: int, sampling: Sampling) -> dict[str, Any]:
        """The ``sampling_params`` dict one request sends."""
        return {**self.base, "temperature": sampling.temperature, "top_p": sampling.top_p,
                "max_tokens": max_new_tokens, "stop": list(self.stop), **KEEP_STOP_STRING[self.engine]}

    async def agenerate(self, prompt_ids: Sequence[int], max_new_tokens: int, sampling: Sampling) -> Generated:
        """One continuation of ``prompt_ids`` (the ``AsyncGenerate`` of ``Rollout.arun_one``)."""
        if max_new_tokens <= 0:
            return Generated([], [], "length")
        out = await self.server.generate(request_id=self.request_id, prompt_ids=list(prompt_ids),
                                         sampling_params=self.params(max_new_tokens, sampling))
        ids = [int(t) for t in out.token_ids][:max_new_tokens]
        logprobs = getattr(out, "log_probs", None)
        if logprobs is None:
            self.has_logprobs = False
            logprobs = [0.0] * len(ids)
        elif len(logprobs) < len(ids):
            raise ValueError(f"the rollout server returned {len(ids)} tokens but {len(logprobs)} log-probs")
        version = (getattr(out, "extra_fields", None) or {}).get("global_steps")
        if version is not None:
            self.weight_version = int(version)
        finish: Finish = "eos" if ids and ids[-1] in self.eos_ids else "length" if len(ids) >= max_new_tokens \
            else "stop"
        return Generated(ids, [float(x) for x in logprobs[: len(ids)]], finish)

    def generate(self, prompts: Sequence[Sequence[int]], max_new_tokens: Sequence[int],
                 sampling: Sampling) -> list[Generated]:
        """The batched ``TokenGenerator`` form: every prompt in flight at once (from synchronous code)."""
        if len(prompts) != len(max_new_tokens):
            raise ValueError(f"{len(prompts)} prompts but {len(max_new_tokens)} token budgets")

        async def everything() -> list[Generated]:
            return list(await asyncio.gather(*(self.agenerate(p, n, sampling)
                                               for p, n in zip(prompts, max_new_tokens, strict=True))))

        return run_sync(everything)
