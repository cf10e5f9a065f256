from __future__ import annotations

import pytest

from zerosearch_rl.protocol import (
    INVALID_ACTION_FEEDBACK,
    STOP_STRINGS,
    Action,
    build_prompt,
    instruction,
    observation_text,
    parse_action,
    render_information,
)
from zerosearch_rl.records import Document


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # plain search after thinking
        ("<think>need the capital</think>\n<search> capital of Peru </search>", Action("search", "capital of Peru")),
        # plain answer; surrounding white space is stripped
        ("<think>done</think><answer>\n Lima \n</answer>", Action("answer", "Lima")),
        # the first complete element wins, whichever kind comes second
        ("<search>a</search><answer>b</answer>", Action("search", "a")),
        ("<answer>b</answer><search>a</search>", Action("answer", "b")),
        # an unfinished search before a complete answer: the answer is the first complete element
        ("<search> half a query <answer> x </answer>", Action("answer", "x")),
        # a search element may not swallow another of our tags
        ("<search> q <answer> x </answer> </search>", Action("answer", "x")),
        # multi-line queries are kept whole
        ("<search>line one\nline two</search>", Action("search", "line one\nline two")),
        # an empty answer still ends the episode
        ("<answer>  </answer>", Action("answer", "")),
        # an empty query is not a search
        ("<search>   </search>", Action("invalid", "empty search query")),
        # no complete element at all
        ("<think>I will search</think>", Action("invalid", "no complete <search> or <answer> element")),
        ("<search> unfinished", Action("invalid", "no complete <search> or <answer> element")),
        ("", Action("invalid", "no complete <search> or <answer> element")),
        # mismatched closing tag is not an element
        ("<search> q </answer>", Action("invalid", "no complete <search> or <answer> element")),
    ],
)
def test_parse_action(text, expected):
    assert parse_action(text) == expected


def test_stop_strings_end_the_parsable_elements():
    for stop in STOP_STRINGS:
        tag = stop[2:-1]
        assert parse_action(f"<{tag}>x{stop}").kind == tag


def test_render_information_format():
    docs = [Document("1", "Lima", "Lima is the capital\nof Peru."), Document("2", "", "No title here.")]
    text = render_information(docs)
    assert text == (
        "<information>Doc 1 (Title: Lima) Lima is the capital of Peru.\n"
        "Doc 2 No title here.\n</information>"
    )
    assert observation_text(docs) == f"\n\n{text}\n\n"


def test_render_information_without_documents_says_so():
    assert render_information([]) == "<information>No documents were found.</information>"


def test_base_prompt_is_the_instruction():
    prompt = build_prompt("  Who wrote Dune? ", style="base")
    assert prompt == instruction("Who wrote Dune?")
    assert prompt.endswith("Question: Who wrote Dune?\n")
    for tag in ("<think>", "<search>", "</search>", "<information>", "<answer>", "</answer>"):
        assert tag in prompt


class ChatTokenizer:
    chat_template = "{{ messages }}"

    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        assert tokenize is False and add_generation_prompt is True
        return f"<|user|>{messages[0]['content']}<|assistant|>"


class PlainTokenizer:
    chat_template = None


def test_chat_prompt_goes_through_the_template():
    prompt = build_prompt("Who wrote Dune?", ChatTokenizer())
    assert prompt == f"<|user|>{instruction('Who wrote Dune?')}<|assistant|>"
    assert build_prompt("Q?", ChatTokenizer(), style="base") == instruction("Q?")


def test_auto_style_falls_back_to_base_without_template():
    assert build_prompt("Q?", PlainTokenizer()) == instruction("Q?")
    assert build_prompt("Q?", None) == instruction("Q?")


def test_prompt_style_errors():
    with pytest.raises(ValueError, match="needs a tokenizer with a chat template"):
        build_prompt("Q?", PlainTokenizer(), style="chat")
    with pytest.raises(ValueError, match="valid: auto, base, chat"):
        build_prompt("Q?", None, style="fancy")


def test_invalid_feedback_names_both_actions():
    assert "<search>" in INVALID_ACTION_FEEDBACK and "<answer>" in INVALID_ACTION_FEEDBACK
    # the feedback is injected text: it must not itself parse as an action
    assert parse_action(INVALID_ACTION_FEEDBACK).kind == "invalid"


def test_feedback_is_never_read_as_the_policys_answer():
    from zerosearch_rl.reward import extract_answer

    response = "<think>hmm</think> I do not know" + INVALID_ACTION_FEEDBACK + "<think>still lost</think>"
    assert extract_answer(response) is None
