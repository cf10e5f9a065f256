"""LLM clients, chosen by name in ``simulator.client``."""

from __future__ import annotations

from dataclasses import replace

from zerosearch_rl.config import SimulatorConfig
from zerosearch_rl.llm.base import ChatLLM, Completion, Sampling

CLIENTS = ("transformers", "openai", "vllm")

__all__ = ["CLIENTS", "ChatLLM", "Completion", "Sampling", "build_chat_llm", "sampling_of"]


def sampling_of(cfg: SimulatorConfig) -> Sampling:
    return Sampling(temperature=cfg.temperature, top_p=cfg.top_p, max_new_tokens=cfg.max_new_tokens)


def build_chat_llm(cfg: SimulatorConfig) -> ChatLLM:
    """The simulator's LLM client; heavy packages are imported only for the client asked for."""
    if cfg.client == "openai":
        from zerosearch_rl.llm.openai_http import OpenAIChatClient

        return OpenAIChatClient.from_config(cfg)
    from zerosearch_rl.model_paths import resolve_model

    if cfg.client == "transformers":
        from zerosearch_rl.llm.transformers_chat import TransformersChat

        return TransformersChat.from_pretrained(resolve_model(cfg.model, "simulator.model"),
                                                system_message=cfg.system_message)
    if cfg.client == "vllm":
        from zerosearch_rl.llm.vllm_chat import VLLMChat

        return VLLMChat.from_config(replace(cfg, model=resolve_model(cfg.model, "simulator.model")))
    raise ValueError(f"unknown simulator client {cfg.client!r}; valid: {', '.join(CLIENTS)}")
