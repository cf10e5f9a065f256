"""The conversation protocol between the policy and the search engine.

The policy writes ``<think>…</think>``, then either ``<search> query </search>`` (answered with an
``<information>…</information>`` block) or ``<answer> … </answer>``, which ends the episode.
Light module: no torch. Tokenizers are duck-typed (anything with ``apply_chat_template``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from zerosearch_rl.types import Document

THINK = "think"
SEARCH = "search"
ANSWER = "answer"
INFORMATION = "information"
TAGS = (THINK, SEARCH, ANSWER, INFORMATION)

#: Generation of one turn stops at the first of these (or at end-of-sequence).
STOP_STRINGS = (f"</{SEARCH}>", f"</{ANSWER}>")

PromptStyle = Literal["auto", "base", "chat"]
PROMPT_STYLES: tuple[str, ...] = ("auto", "base", "chat")

INSTRUCTION = (
    "Answer the question below. Reason inside <think> and </think> each time you receive new "
    "information. When a fact is missing, look it up by writing a query between <search> and "
    "</search>; the results will appear between <information> and </information>. Search as often "
    "as you need. When you know enough, write only the final answer, a short phrase with no "
    "explanation, between <answer> and </answer>, for example <answer> Lisbon </answer>.\n"
    "Question: {question}\n"
)

# Names the opening tags only: a complete "<answer> … </answer>" pair in injected text would be
# read back as the policy's answer by ``reward.extract_answer``.
INVALID_ACTION_FEEDBACK = (
    "\nMy previous action was invalid. To search, I must write the query right after <search> and "
    "end it with the closing search tag; to finish, I must write the final answer right after "
    "<answer> and end it with the closing answer tag. Let me try again.\n"
)

NO_RESULTS = "No documents were found."

#: How an observation appears in the policy's own text (``Trajectory.policy_text``, what rewards and format
#: checks read): an empty information block. Nothing a search engine writes can then become the policy's
#: answer or change its format, and no answer element can span two turns (element content holds no tag).
OBSERVED = f"\n\n<{INFORMATION}></{INFORMATION}>\n\n"
#: An invalid action's feedback there: text outside any element (so the episode is not well-formed) before
#: an empty block (so no answer element spans it, whatever the feedback says).
FEEDBACK_GIVEN = f"\n[invalid action]{OBSERVED}"

#: Matches any of our tags; element content may hold none of them.
OWN_TAG = r"</?(?:think|search|answer|information)>"
# The first complete <search> or <answer> element whose content holds none of our tags.
_ACTION_RE = re.compile(rf"<(search|answer)>((?:(?!{OWN_TAG}).)*?)</\1>", re.DOTALL)


def instruction(question: str) -> str:
    """The user-facing instruction with the question filled in."""
    return INSTRUCTION.format(question=question.strip())


def uses_chat_template(tokenizer: Any, style: str) -> bool:
    """Whether ``build_prompt`` renders through the tokenizer's chat template for this style."""
    if style not in PROMPT_STYLES:
        raise ValueError(f"unknown prompt style {style!r}; valid: {', '.join(PROMPT_STYLES)}")
    has_template = getattr(tokenizer, "chat_template", None) is not None
    if style == "chat" and not has_template:
        raise ValueError("prompt style 'chat' needs a tokenizer with a chat template")
    return style == "chat" or (style == "auto" and has_template)


def build_prompt(question: str, tokenizer: Any = None, style: str = "auto") -> str:
    """The policy's prompt text for ``question``.

    ``base``: the instruction as plain text (for base models). ``chat``: the instruction as the user
    message, rendered by the tokenizer's chat template with the generation prompt appended (for
    instruct models). ``auto``: ``chat`` when the tokenizer has a chat template, else ``base``.
    """
    return render_user_message(instruction(question), tokenizer, style)


def render_user_message(text: str, tokenizer: Any = None, style: str = "auto") -> str:
    """``text`` as the prompt: plain (``base``) or the user message of the tokenizer's chat template
    with the generation prompt appended (``chat``); ``auto`` picks as ``uses_chat_template`` does."""
    if uses_chat_template(tokenizer, style):
        rendered = tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
        )
        return str(rendered)
    return text


@dataclass(frozen=True)
class Action:
    """What one policy turn asked for. ``content`` is the query, the answer, or why it was invalid."""

    kind: Literal["search", "answer", "invalid"]
    content: str


def parse_action(text: str) -> Action:
    """Parse one turn of policy output: the first complete ``<search>`` or ``<answer>`` element wins.

    An empty query is invalid (there is nothing to search for); an empty answer is still an answer
    (it ends the episode and scores 0).
    """
    match = _ACTION_RE.search(text)
    if match is None:
        return Action("invalid", "no complete <search> or <answer> element")
    kind, content = match.group(1), match.group(2).strip()
    if kind == SEARCH:
        if not content:
            return Action("invalid", "empty search query")
        return Action("search", content)
    return Action("answer", content)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def render_information(docs: Sequence[Document]) -> str:
    """``<information>Doc 1 (Title: …) text`` one document a line ``</information>``."""
    if not docs:
        return f"<{INFORMATION}>{NO_RESULTS}</{INFORMATION}>"
    lines = []
    for i, doc in enumerate(docs, start=1):
        title = f" (Title: {_one_line(doc.title)})" if doc.title.strip() else ""
        lines.append(f"Doc {i}{title} {_one_line(doc.text)}\n")
    return f"<{INFORMATION}>{''.join(lines)}</{INFORMATION}>"


def observation_text(docs: Sequence[Document]) -> str:
    """The text injected after a search turn: the information block set off by blank lines."""
    return f"\n\n{render_information(docs)}\n\n"
