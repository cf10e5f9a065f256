"""The conversation protocol between the policy and the search engine.

The policy writes ``<think>…</think>``, then either ``<search> query </search>`` (answered with an
``<information>…</information>`` block) or ``<answer> … </answer>``, which ends the episode.
Light module: no torch. Tokenizers are duck-typed (anything with ``apply_chat_template``).
"""

from __future__ import annotations

import re
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from zerosearch_rl.records import Document

THINK = "think"
SEARCH = "search"
ANSWER = "answer"
INFORMATION = "information"
TAGS = (THINK, SEARCH, ANSWER, INFORMATION)

#: Generation of one turn stops at the first of these (or at end-of-sequence).
STOP_STRINGS = (f"</{SEARCH}>", f"</{ANSWER}>")

PromptStyle = Literal["auto", "base", "chat"]
PROMPT_STYLES: tuple[str, ...] = typing.get_args(PromptStyle)

#: Whose instruction the policy gets: ours (``INSTRUCTION``), Search-R1's (``SEARCH_R1_INSTRUCTION``, the text
#: of the Search-R1/ZeroSearch parquet data and of the released policies), or each data row's own ``prompt``.
PromptTemplate = Literal["own", "search_r1", "data"]
PROMPT_TEMPLATES: tuple[str, ...] = typing.get_args(PromptTemplate)

#: How observations are written into the policy's context: ours (``render_information``: one ``Doc N (Title: …)``
#: line per document, a closed block even when truncated) or ZeroSearch's (``render_zerosearch``).
ObservationFormat = Literal["own", "zerosearch"]
OBSERVATION_FORMATS: tuple[str, ...] = typing.get_args(ObservationFormat)

INSTRUCTION = (
    "Answer the question below. Reason inside <think> and </think> each time you receive new "
    "information. When a fact is missing, look it up by writing a query between <search> and "
    "</search>; the results will appear between <information> and </information>. Search as often "
    "as you need. When you know enough, write only the final answer, a short phrase with no "
    "explanation, between <answer> and </answer>, for example <answer> Lisbon </answer>.\n"
    "Question: {question}\n"
)

# Fact from PeterGriffinJin/Search-R1 scripts/data_process/nq_search.py (make_prefix, template "base"), the
# prompt column of the ZeroSearch_dataset parquet files and ZeroSearch's inference.py: one line, no line break
# before "Question:", the question (stripped, "?" appended when missing) then a newline.
SEARCH_R1_INSTRUCTION = (
    "Answer the given question. You must conduct reasoning inside <think> and </think> first every time you get "
    "new information. After reasoning, if you find you lack some knowledge, you can call a search engine by "
    "<search> query </search> and it will return the top searched results between <information> and "
    "</information>. You can search as many times as your want. If you find no further external knowledge "
    "needed, you can directly provide the answer inside <answer> and </answer>, without detailed "
    "illustrations. For example, <answer> Beijing </answer>. Question: {question}\n"
)

# Names the opening tags only: a complete "<answer> … </answer>" pair in injected text would be
# read back as the policy's answer by ``reward.extract_answer``.
INVALID_ACTION_FEEDBACK = (
    "\nMy previous action was invalid. To search, I must write the query right after <search> and "
    "end it with the closing search tag; to finish, I must write the final answer right after "
    "<answer> and end it with the closing answer tag. Let me try again.\n"
)

NO_RESULTS = "No documents were found."

# Fact from Alibaba-NLP/ZeroSearch llm_agent/generation.py (execute_predictions): the feedback after an invalid
# action. Its "<answer> and </answer>" is a complete answer element: rewards read ``Trajectory.policy_text``.
ZEROSEARCH_INVALID_ACTION_FEEDBACK = (
    "\nMy previous action is invalid. If I want to search, I should put the query between <search> and "
    "</search>. If I want to give the final answer, I should put the answer between <answer> and </answer>. "
    "Let me try again.\n"
)

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


class PromptError(ValueError):
    """A prompt that cannot be built as configured; the message names the setting (``model.prompt_style``,
    ``model.prompt_template``) and what would work."""


def instruction(question: str) -> str:
    """The user-facing instruction with the question filled in."""
    return INSTRUCTION.format(question=question.strip())


def uses_chat_template(tokenizer: Any, style: str) -> bool:
    """Whether ``build_prompt`` renders through the tokenizer's chat template for this style."""
    if style not in PROMPT_STYLES:
        raise ValueError(f"unknown prompt style {style!r}; valid: {', '.join(PROMPT_STYLES)}")
    has_template = getattr(tokenizer, "chat_template", None) is not None
    if style == "chat" and not has_template:
        raise PromptError("model.prompt_style=chat needs a tokenizer with a chat template, and this one has none: "
                          "use model.prompt_style=base (or auto, which picks base for it)")
    return style == "chat" or (style == "auto" and has_template)


def search_r1_question(question: str) -> str:
    """The question as Search-R1's data preparation writes it into the prompt: stripped, ``?`` appended."""
    q = question.strip()
    return q if q.endswith("?") else f"{q}?"


def prompt_messages(question: str, template: str = "own",
                    row_prompt: Sequence[Mapping[str, str]] | None = None) -> list[dict[str, str]]:
    """The chat messages of the policy's prompt for ``question`` under ``template`` (see ``PromptTemplate``);
    ``row_prompt`` is the data row's own ``prompt`` column, which ``data`` uses as it is."""
    if template == "own":
        return [{"role": "user", "content": instruction(question)}]
    if template == "search_r1":
        return [{"role": "user", "content": SEARCH_R1_INSTRUCTION.format(question=search_r1_question(question))}]
    if template == "data":
        if not row_prompt:
            raise PromptError("model.prompt_template=data needs examples with a 'prompt' column (ZeroSearch/Search-R1 "
                              "parquet); this example has none")
        return [{"role": str(m["role"]), "content": str(m["content"])} for m in row_prompt]
    raise ValueError(f"unknown prompt template {template!r}; valid: {', '.join(PROMPT_TEMPLATES)}")


def build_prompt(question: str, tokenizer: Any = None, style: str = "auto", template: str = "own",
                 row_prompt: Sequence[Mapping[str, str]] | None = None) -> str:
    """The policy's prompt text for ``question``.

    ``base``: the first message's text as plain text (for base models). ``chat``: the messages rendered by
    the tokenizer's chat template with the generation prompt appended (for instruct models). ``auto``:
    ``chat`` when the tokenizer has a chat template, else ``base`` — the rule of veRL's RLHFDataset in
    ZeroSearch's fork (``apply_chat_template`` when ``tokenizer.chat_template``, else ``chat[0]['content']``).
    """
    return render_messages(prompt_messages(question, template, row_prompt), tokenizer, style)


def render_messages(messages: Sequence[Mapping[str, str]], tokenizer: Any = None, style: str = "auto") -> str:
    """``messages`` as the prompt: the first one's text (``base``) or the tokenizer's chat template with the
    generation prompt appended (``chat``); ``auto`` picks as ``uses_chat_template`` does."""
    if uses_chat_template(tokenizer, style):
        return str(tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True))
    return str(messages[0]["content"])


def render_user_message(text: str, tokenizer: Any = None, style: str = "auto") -> str:
    """``text`` as the prompt's single user message (see ``render_messages``)."""
    return render_messages([{"role": "user", "content": text}], tokenizer, style)


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


def search_r1_page(docs: Sequence[Document]) -> str:
    """Search-R1's rendering of retrieved documents (``_passages2string``, a fact from its llm_agent/generation.py):
    ``Doc i(Title: T) text`` a line, T the first line of the document's ``contents`` (quoted, as in its corpus)."""
    lines = []
    for i, doc in enumerate(docs, start=1):
        title, _, text = doc.contents.partition("\n")
        lines.append(f"Doc {i}(Title: {title}) {text}\n")
    return "".join(lines)


def render_zerosearch(docs: Sequence[Document]) -> str:
    """ZeroSearch's observation (``execute_predictions``): ``\n\n<information>{page.strip()}</information>\n\n``.

    The page is the engine's own page when it wrote one (``Document.page``: the simulator's reply as ZeroSearch
    post-processes it, SerpAPI's ``Doc i: title+snippet`` lines), else Search-R1's rendering of the documents.
    """
    page = docs[0].page if docs and docs[0].page is not None else search_r1_page(docs)
    return f"\n\n<{INFORMATION}>{page.strip()}</{INFORMATION}>\n\n"


def observation_text(docs: Sequence[Document], fmt: str = "own") -> str:
    """The text injected after a search turn: the information block set off by blank lines, in ``fmt``."""
    if fmt == "zerosearch":
        return render_zerosearch(docs)
    if fmt == "own":
        return f"\n\n{render_information(docs)}\n\n"
    raise ValueError(f"unknown observation format {fmt!r}; valid: {', '.join(OBSERVATION_FORMATS)}")


def invalid_action_feedback(fmt: str = "own") -> str:
    """The observation after an invalid action, in ``fmt``."""
    return ZEROSEARCH_INVALID_ACTION_FEEDBACK if fmt == "zerosearch" else INVALID_ACTION_FEEDBACK
