"""A policy served by an OpenAI-compatible server (vLLM, sglang), as a ``TokenGenerator`` for evaluation.

The text-completions endpoint (``POST {base_url}/completions``) takes the rendered prompt as text, so the
chat template, our tags and the ``<information>`` blocks are exactly what the in-process generator
would see. This is text level, not token level: the prompt is decoded by the local tokenizer and the
reply tokenized again, which is fine for evaluation (nothing is trained on these tokens) but is why
training refuses this generator. Retries, timeouts and fail-over across base URLs are those of
``OpenAIChatClient``; a request that still fails raises ``EndpointError`` naming the URLs.

Servers strip the stop string from the reply (``</search>``, ``</answer>``); it is put back when the
reply opened that element and did not close it, so the action parses as the model wrote it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from zerosearch_rl.generation.base import Finish, Generated
from zerosearch_rl.generation.sampling import Sampling
from zerosearch_rl.llm.base import Sampling as ChatSampling
from zerosearch_rl.llm.openai_http import OpenAIChatClient
from zerosearch_rl.net import EndpointError
from zerosearch_rl.protocol import STOP_STRINGS


class OpenAICompletionsClient(OpenAIChatClient):
    """``OpenAIChatClient`` over the text-completions endpoint, stopping at our closing tags."""

    endpoint = "completions"

    def model_name(self) -> str:
        """The served model's name (looked up in ``/models`` when not given); ``EndpointError`` if no server answers."""
        return self._submit(self._model_name()).result()

    def _payload(self, message: str) -> dict[str, Any]:
        return {"prompt": message, "stop": list(STOP_STRINGS)}

    def _parse(self, body: Any) -> tuple[str, int, int]:
        try:
            text = body["choices"][0]["text"]
        except (KeyError, IndexError, TypeError):
            text = None
        if not isinstance(text, str):
            raise ValueError(f"malformed reply without choices[0].text: {str(body)[:200]}")
        usage = body.get("usage") or {}
        return text, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)


def restore_stop(text: str) -> tuple[str, bool]:
    """``text`` with the stripped stop string put back, and whether one was (the turn ended on an action)."""
    for stop in STOP_STRINGS:
        opening = stop.replace("</", "<")
        if text.rfind(opening) > text.rfind(stop):
            return text + stop, True
    return text, False


class CompletionsGenerator:
    """A ``TokenGenerator`` backed by an ``OpenAICompletionsClient`` and the policy's tokenizer."""

    def __init__(self, client: OpenAICompletionsClient, tokenizer: Any) -> None:
        self.client, self.tokenizer = client, tokenizer

    def generate(self, prompts: Sequence[Sequence[int]], max_new_tokens: Sequence[int],
                 sampling: Sampling) -> list[Generated]:
        out: list[Generated | None] = [None] * len(prompts)
        for budget in sorted(set(max_new_tokens)):  # one request batch per token budget
            rows = [i for i, n in enumerate(max_new_tokens) if n == budget]
            if budget <= 0:
                for i in rows:
                    out[i] = Generated([], [], "length")
                continue
            chat_sampling = ChatSampling(sampling.temperature, sampling.top_p, budget, sampling.seed)
            texts = [self.tokenizer.decode(list(prompts[i]), skip_special_tokens=False) for i in rows]
            for i, done in zip(rows, self.client.generate(texts, chat_sampling), strict=True):
                if done.text is None:
                    raise EndpointError(done.error or "policy server: no reply")
                text, stopped = restore_stop(done.text)
                ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])[:budget]
                finish: Finish = "stop" if stopped else "length" if done.completion_tokens >= budget else "eos"
                out[i] = Generated(ids, [0.0] * len(ids), finish)
        return [g for g in out if g is not None]

    def close(self) -> None:
        self.client.close()
