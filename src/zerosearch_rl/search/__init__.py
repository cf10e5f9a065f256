"""Search engines behind one batched interface, chosen by name in ``search.backend``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from zerosearch_rl.config import BACKENDS, SIMULATED_ENGINES, Config, ConfigError
from zerosearch_rl.search.base import SearchBackend, SearchError, failure_document

__all__ = ["BACKENDS", "SearchBackend", "SearchError", "build_backend", "failure_document"]

def _simulated(cfg: Config, name: str) -> SearchBackend:
    from zerosearch_rl.llm import build_chat_llm, sampling_of
    from zerosearch_rl.search.simulated import SimulatedBackend

    mode: Literal["sft", "prompt"] = "sft" if name == "simulate_sft" else "prompt"
    return SimulatedBackend(build_chat_llm(cfg.simulator), mode=mode, topk=cfg.search.topk,
                            sampling=sampling_of(cfg.simulator), on_error=cfg.search.on_error,
                            prompt=cfg.simulator.prompt, deduplicate=cfg.simulator.deduplicate)


def _bm25(cfg: Config, name: str) -> SearchBackend:
    from zerosearch_rl.search.bm25 import BM25Backend

    return BM25Backend(_corpus(cfg, name), topk=cfg.search.topk, index_dir=cfg.search.index_dir or None)


def _dense(cfg: Config, name: str) -> SearchBackend:
    from zerosearch_rl.search.dense import DenseBackend

    return DenseBackend(_corpus(cfg, name), topk=cfg.search.topk, index_dir=cfg.search.index_dir or None)


def _remote(cfg: Config, name: str) -> SearchBackend:
    from zerosearch_rl.search.remote import RemoteBackend

    if not cfg.search.urls:
        raise ConfigError("search.backend=remote needs search.urls (e.g. search.urls=[http://127.0.0.1:8000])")
    return RemoteBackend.from_config(cfg.search, send_extras=cfg.search.remote_extras)


def _serpapi(cfg: Config, name: str) -> SearchBackend:
    from zerosearch_rl.net import RetryPolicy
    from zerosearch_rl.search.web import SerpAPIBackend

    s = cfg.search
    return SerpAPIBackend(topk=s.topk, timeout_s=s.timeout_s, retry=RetryPolicy(s.max_retries, s.backoff_s))


def _fake(cfg: Config, name: str) -> SearchBackend:
    from zerosearch_rl.search.fake import FakeBackend

    return FakeBackend(topk=cfg.search.topk)


def _mixture(cfg: Config, name: str) -> SearchBackend:
    from zerosearch_rl.search.wrappers import MixtureBackend

    real = _engine(cfg, cfg.search.mixture_real)
    simulated = _engine(cfg, cfg.search.mixture_simulator)
    return MixtureBackend(real, simulated, cfg.search.mixture_real_share, seed=cfg.trainer.seed)


def _corpus(cfg: Config, name: str) -> str:
    if not cfg.search.corpus:
        raise ConfigError(f"search.backend={name} needs search.corpus (a JSONL file of documents)")
    return cfg.search.corpus


_FACTORIES: dict[str, Callable[[Config, str], SearchBackend]] = {
    "simulate_prompt": _simulated, "simulate_sft": _simulated, "bm25": _bm25, "dense": _dense,
    "remote": _remote, "serpapi": _serpapi, "mixture": _mixture, "fake": _fake,
}


def _engine(cfg: Config, name: str) -> SearchBackend:
    if name not in _FACTORIES:
        raise ConfigError(f"unknown search backend {name!r}; valid: {', '.join(_FACTORIES)}")
    backend = _FACTORIES[name](cfg, name)
    if cfg.search.on_error == "document" and name not in SIMULATED_ENGINES:
        from zerosearch_rl.search.wrappers import FailSoftBackend

        backend = FailSoftBackend(backend)  # simulators apply on_error per request themselves
    return backend


def build_backend(cfg: Config, name: str | None = None) -> SearchBackend:
    """The engine named ``name`` (default ``search.backend``), with the configured cache around it."""
    backend = _engine(cfg, name or cfg.search.backend)
    if cfg.search.cache == "none":
        return backend
    from zerosearch_rl.search.wrappers import CachedBackend

    return CachedBackend(backend, cfg.search.cache_path if cfg.search.cache == "sqlite" else None)
