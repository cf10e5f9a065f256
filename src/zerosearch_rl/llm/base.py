"""Text generators behind the simulated search engine and the LLM judge (and the HTTP client of a served policy).

A ``ChatLLM`` takes a batch of user messages and returns one ``Completion`` per message, in order.
Every chat client sends a message as ``chat_messages`` builds it (over HTTP) or renders it as
``render_chat`` does (in process, which is what a server does with those messages).
It never raises for one failed request: the completion carries the error (naming the endpoint),
so the caller decides between failing loudly and serving a "search failed" document, and one bad
request never takes its neighbours down with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class Sampling:
    """A chat LLM's sampling settings for one batch of messages. ``temperature == 0`` means greedy; the default is
    the simulator's (ZeroSearch's 0.8). The policy's generators have their own, ``generation.sampling.Sampling``.

    ``top_p=None`` leaves nucleus sampling unset: the HTTP client does not send it, so the server's default
    applies (vLLM and sglang take it from the model's ``generation_config.json``; the original ZeroSearch
    sends none), and the in-process engines sample from the whole distribution.
    """

    temperature: float = 0.8
    top_p: float | None = 1.0
    max_new_tokens: int = 600
    seed: int | None = None


@dataclass(frozen=True)
class Completion:
    """The answer to one message: ``text``, or ``error`` when it failed after every retry."""

    text: str | None
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


@runtime_checkable
class ChatLLM(Protocol):
    """Anything that answers user messages in batches (HTTP server, in-process model)."""

    def generate(self, messages: Sequence[str], sampling: Sampling) -> list[Completion]: ...

    def close(self) -> None: ...


def chat_messages(message: str, system_message: str | None) -> list[dict[str, str]]:
    """The chat of one request: a system message when ``system_message`` is a string, even an empty one, then
    ``message`` as the user message; ``None`` sends the user message alone.

    The original ZeroSearch (``ask_llm``) sends an empty system message. It matters: without any, a chat
    template such as Qwen2.5's writes its default system prompt ("You are Qwen, created by Alibaba Cloud..."),
    an input other than the one the released simulator checkpoints were tuned on.
    """
    system = [] if system_message is None else [{"role": "system", "content": system_message}]
    return [*system, {"role": "user", "content": message}]


def render_chat(tokenizer: Any, message: str, system_message: str | None) -> str:
    """The prompt text of ``chat_messages(message, system_message)`` as a chat server renders it: the tokenizer's
    chat template with the assistant's generation prompt; the message itself when there is no template."""
    if getattr(tokenizer, "chat_template", None):
        return str(tokenizer.apply_chat_template(chat_messages(message, system_message), tokenize=False,
                                                 add_generation_prompt=True))
    return message
