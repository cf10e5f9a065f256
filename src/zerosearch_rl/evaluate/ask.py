"""``zerosearch ask``: one question, its trace printed live with the tags coloured, or JSON for scripts.

The episode is run by the same method objects as ``zerosearch eval`` (``agent`` drives ``Rollout``);
the generator and the engine are wrapped so that each policy turn and each result page is printed the
moment it exists.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any

from zerosearch_rl.config import Config
from zerosearch_rl.evaluate.harness import NoSearch, RecordingBackend, item_trace
from zerosearch_rl.evaluate.methods import EvalContext, get_method
from zerosearch_rl.generation.base import Generated, TokenGenerator
from zerosearch_rl.generation.sampling import Sampling
from zerosearch_rl.protocol import render_information
from zerosearch_rl.records import Document, QAExample, SearchRequest
from zerosearch_rl.search.base import SearchBackend

#: The style of each element in the live trace.
TAG_STYLES = {"think": "italic cyan", "search": "bold magenta", "information": "green", "answer": "bold yellow"}
_ELEMENT = re.compile(r"<(think|search|information|answer)>.*?(?:</\1>|$)", re.DOTALL)


def coloured(text: str) -> Any:
    """``text`` as a rich ``Text`` whose elements (tags included) carry their tag's style."""
    from rich.text import Text

    out, pos = Text(), 0
    for m in _ELEMENT.finditer(text):
        out.append(text[pos : m.start()])
        out.append(m.group(0), style=TAG_STYLES[m.group(1)])
        pos = m.end()
    out.append(text[pos:])
    return out


class _LiveGenerator:
    """Prints each generated turn as soon as the model returns it."""

    def __init__(self, inner: TokenGenerator, tokenizer: Any, console: Any) -> None:
        self.inner, self.tokenizer, self.console = inner, tokenizer, console

    def generate(self, prompts: Sequence[Sequence[int]], max_new_tokens: Sequence[int],
                 sampling: Sampling) -> list[Generated]:
        outs = self.inner.generate(prompts, max_new_tokens, sampling)
        for g in outs:
            self.console.print(coloured(self.tokenizer.decode(g.token_ids, skip_special_tokens=True)))
        return outs


class _LiveBackend(RecordingBackend):
    """Records like the harness's engine, and prints each query's result page."""

    def __init__(self, inner: SearchBackend, console: Any) -> None:
        super().__init__(inner)
        self.console = console

    def search(self, requests: Sequence[SearchRequest]) -> list[list[Document]]:
        pages = super().search(requests)
        for request, docs in zip(requests, pages, strict=True):
            if request.turn < 0:  # a search injected before the model's first turn (agent_forced, rag)
                self.console.print(coloured(f"<search> {request.query} </search>"))
            self.console.print(coloured(render_information(docs)))
        return pages


def ask(cfg: Config, question: str, method: str = "agent", answers: Sequence[str] = (), console: Any = None,
        generator: TokenGenerator | None = None, tokenizer: Any = None,
        backend: SearchBackend | None = None) -> dict[str, Any]:
    """Answer one question with ``method``; prints the trace live on ``console`` (none: silent).

    The model and engine are those of ``cfg`` unless given. Returns the trace as ``zerosearch eval``
    writes it, plus the model, engine and seconds; scores are meaningful only when ``answers`` are given.
    """
    runner = get_method(method)
    owned: list[Any] = []
    if generator is None or tokenizer is None:
        from zerosearch_rl.evaluate.policies import load_eval_policy

        policy = load_eval_policy(cfg)
        owned.append(policy)
        generator, tokenizer = policy.generator, policy.tokenizer
    if backend is None:
        from zerosearch_rl.search import build_backend

        backend = build_backend(cfg) if runner.searches else NoSearch()
        owned.append(backend)
    example = QAExample(id="ask", question=question, answers=tuple(answers), source="ask")
    recorder = _LiveBackend(backend, console) if console is not None else RecordingBackend(backend)
    live = _LiveGenerator(generator, tokenizer, console) if console is not None else generator
    ctx = EvalContext.from_config(cfg, live, tokenizer, recorder)
    start = time.perf_counter()
    try:
        (traj,) = runner.run(ctx, [example])
    finally:
        for thing in owned:
            thing.close()
    trace = item_trace(method, example, traj, recorder.take(traj.sample_id), tokenizer)
    if not answers:
        trace.pop("scores")
        trace["answers"] = []
    return trace | {"model": cfg.eval.name or cfg.model.policy or ", ".join(cfg.eval.policy_urls),
                    "engine": backend.name, "seconds": round(time.perf_counter() - start, 3)}
