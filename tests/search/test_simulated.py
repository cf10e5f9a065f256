from __future__ import annotations

import itertools

import pytest

# Facts: the original's f-strings and post-processing, copied from Alibaba-NLP/ZeroSearch llm_agent/generation.py
from fakes.zerosearch_original import original_few_shot_prompt, original_page, original_sft_prompt
from zerosearch_rl.llm.base import Completion, Sampling
from zerosearch_rl.records import SearchRequest
from zerosearch_rl.search.base import SearchError
from zerosearch_rl.search.simulated import (
    NO_ANSWER,
    SimulatedBackend,
    build_simulator_prompt,
    original_page_text,
    parse_documents,
)

FIVE = "\n".join(f"Doc {i}: text number {i}." for i in range(1, 6))


class ScriptedLLM:
    """Answers every message with ``reply(message)``; records what it was asked."""

    def __init__(self, reply=lambda m: FIVE, fail=lambda m: False):
        self.reply, self.fail, self.calls = reply, fail, []

    def generate(self, messages, sampling):
        self.calls.append(list(messages))
        return [Completion(None, error="http://sim:1/v1: HTTP 500") if self.fail(m)
                else Completion(self.reply(m), prompt_tokens=10, completion_tokens=20, latency_s=0.5)
                for m in messages]

    def close(self):
        pass


def req(query="capital of peru", question="What is the capital of Peru?", answers=("Lima",), noisy=False, **kw):
    return SearchRequest(query=query, question=question, answers=answers, noisy=noisy, **kw)


PROMPT_CASES = [  # (question, golds, query); the original's answer slot is golds[0]
    ("What is the capital of Peru?", ("Lima", "Lima, Peru"), "capital of peru"),
    ('Who said "to be or not to be"?', ("William Shakespeare", "Shakespeare", "the Bard"), "'to be or not' quote"),
    ("Où est né Gauß?", ("Braunschweig",), "Gauß Geburtsort 出生地 🎓"),
    ("Which set is {x | x > 0}?", ("{1, 2}",), "set {x} notation"),  # braces are text, never a format field
    ("Who is Ada?", (), "ada"),  # no gold: the original cannot run; ours writes NO_ANSWER in the slot
]


@pytest.mark.parametrize("noisy", [False, True], ids=["useful", "noisy"])
@pytest.mark.parametrize(("question", "golds", "query"), PROMPT_CASES)
def test_sft_prompt_is_the_original_byte_for_byte(question, golds, query, noisy):
    prompt = build_simulator_prompt(req(query=query, question=question, answers=golds, noisy=noisy), "sft")
    assert prompt == original_sft_prompt(question, golds[0] if golds else NO_ANSWER, query, not noisy)


@pytest.mark.parametrize("noisy", [False, True], ids=["useful", "noisy"])
@pytest.mark.parametrize(("question", "golds", "query"), PROMPT_CASES)
def test_zerosearch_few_shot_prompts_are_the_original_byte_for_byte(question, golds, query, noisy):
    request = req(query=query, question=question, answers=golds, noisy=noisy)
    expected = original_few_shot_prompt(question, golds[0] if golds else NO_ANSWER, query, not noisy)
    assert build_simulator_prompt(request, "prompt") == expected  # zerosearch is the default
    assert build_simulator_prompt(request, "prompt", "zerosearch") == expected
    assert build_simulator_prompt(request, "sft", "own") == original_sft_prompt(  # sft has one prompt
        question, golds[0] if golds else NO_ANSWER, query, not noisy)


def test_own_few_shot_prompt_carries_a_demonstration_of_the_same_kind():
    useful = build_simulator_prompt(req(noisy=False), "prompt", "own")
    noisy = build_simulator_prompt(req(noisy=True), "prompt", "own")
    assert "must be useful" in useful and "must be noisy" in noisy
    assert "Athens, Greece, in April 1896" in useful and "Athens, Greece" not in noisy  # demo docs match the kind
    for p in (useful, noisy):
        assert p.endswith("Query: capital of peru\n" + ("Useful" if p is useful else "Noisy") + " Output:")
        assert '"What is the capital of Peru?" whose answer is Lima' in p
    with pytest.raises(ValueError, match="valid: sft, prompt"):
        build_simulator_prompt(req(), "chat")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="valid: zerosearch, own"):
        build_simulator_prompt(req(), "prompt", "mine")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "texts", "clean"),
    [
        (FIVE, [f"text number {i}." for i in range(1, 6)], True),
        # blank lines between documents and surrounding white space
        ("\n\nDoc 1: a\n\n\nDoc 2: b\n", ["a", "b"], True),
        # markdown decoration and other separators
        ("**Doc 1:** a\n- Doc 2. b\nDocument 3) c\ndoc #4 - d", ["a", "b", "c", "d"], True),
        # numbering drift is ignored: order of appearance counts
        ("Doc 1: a\nDoc 1: b\nDoc 7: c", ["a", "b", "c"], True),
        # wrapped documents are joined
        ("Doc 1: first half\nsecond half\nDoc 2: b", ["first half second half", "b"], True),
        # more documents than asked: the first topk are kept
        ("\n".join(f"Doc {i}: t{i}" for i in range(1, 9)), ["t1", "t2", "t3", "t4", "t5"], True),
        # a reasoning model's think block is dropped
        ("<think>let me write</think>\nDoc 1: a", ["a"], True),
        # chatter before the documents: kept documents, but reported as not clean
        ("Sure! Here are the results:\nDoc 1: a", ["a"], False),
        # no markers at all: one document per paragraph, not clean
        ("first paragraph\n\nsecond paragraph", ["first paragraph", "second paragraph"], False),
        # empty output: nothing, not clean
        ("   ", [], False),
        ("Doc 1:", [], False),
        # a "(Title: ...)" marker becomes the title; a marker with no text after it stays text
        ("Doc 1: (Title: Ada Kowalski) Ada was born in Marlow.\nDoc 2: (Title: x)", ["Ada was born in Marlow.",
                                                                                      "(Title: x)"], True),
    ],
)
def test_parse_documents(text, texts, clean):
    docs, ok = parse_documents(text, topk=5)
    assert [d.text for d in docs] == texts
    assert ok is clean
    assert len({d.id for d in docs}) == len(docs)


@pytest.mark.parametrize(
    ("reply", "topk", "page"),
    [  # pages worked out by hand from the original's expression
        (FIVE, 5, FIVE),
        ("Doc 1: a\n\nDoc 2: b\n\n\nDoc 3: c", 5, "Doc 1: a\nDoc 2: b\n\nDoc 3: c"),  # "\n\n" -> "\n", left to right
        ("Doc 1: a\nDoc 2: b\nDoc 3: c", 2, "Doc 1: a\nDoc 2: b\n"),  # cut at "Doc 3", its newline kept
        ("Doc 1: see Doc 25 below\nDoc 2: b", 1, "Doc 1: see "),  # "Doc 2" inside "Doc 25" cuts too
        ("Sure!\n\nDoc 1: a\n\n", 5, "Sure!\nDoc 1: a\n"),  # chatter stays
        ("**Doc 1:** a\n\n**Doc 6:** f", 5, "**Doc 1:** a\n**"),
        ("\n\n\n\nDoc 1: a", 5, "\n\nDoc 1: a"),  # not stripped here: the observation strips it
        ("Doc 1: a\r\n\r\nDoc 2: b", 5, "Doc 1: a\r\n\r\nDoc 2: b"),  # only "\n\n" counts
        ("", 5, ""),
    ],
)
def test_original_page_text_is_the_originals_post_processing(reply, topk, page):
    assert original_page_text(reply, topk) == page
    assert original_page(reply, topk) == page


def test_documents_carry_the_page_as_the_original_shows_it():
    from zerosearch_rl.protocol import render_zerosearch

    replies = {"q1": "Doc 1: a\n\nDoc 2: b\nDoc 3: c", "broken": None}
    llm = ScriptedLLM(reply=lambda m: replies[m.split("Query: ")[1].split("\n")[0]],
                      fail=lambda m: "Query: broken" in m)
    backend = SimulatedBackend(llm, topk=2, on_error="document")
    ok, failed = backend.search([req(query="q1"), req(query="broken")])
    assert [d.text for d in ok] == ["a", "b"]  # parse_documents as before
    assert {d.page for d in ok} == {"Doc 1: a\nDoc 2: b\n"}
    assert render_zerosearch(ok) == "\n\n<information>Doc 1: a\nDoc 2: b</information>\n\n"
    # the original's batch_search serves 'No information available' for a search that failed
    assert [d.id for d in failed] == ["search-failed"] and render_zerosearch(failed) == (
        "\n\n<information>No information available</information>\n\n")


def test_titled_pages_render_like_the_engine_that_wrote_them():
    page = ("Doc 1: (Title: Ada Kowalski) Ada was born in Marlow.\nDoc 2: plain text\n"
            "Doc 3: (Title: Mercury (planet)) Hot.")
    docs, _ = parse_documents(page, topk=5)
    assert [(d.title, d.text) for d in docs] == [("Ada Kowalski", "Ada was born in Marlow."), ("", "plain text"),
                                                 ("Mercury (planet)", "Hot.")]


def test_each_request_gets_its_own_question_and_answer():
    llm = ScriptedLLM(reply=lambda m: f"Doc 1: {m.splitlines()[3]}")
    backend = SimulatedBackend(llm, mode="sft", topk=5)
    requests = [req(query="q a", question="Who is A?", answers=("Ann",), sample_id="s0"),
                req(query="q c", question="Who is C?", answers=("Cid",), noisy=True, sample_id="s2")]
    pages = backend.search(requests)
    assert pages[0][0].text == 'The user is trying to answer the question: "Who is A?" whose answer is Ann.'
    assert pages[1][0].text == 'The user is trying to answer the question: "Who is C?" whose answer is Cid.'
    assert "five useful documents" in llm.calls[0][0] and "five noisy documents" in llm.calls[0][1]


def numbered_llm():
    """A ScriptedLLM whose every generation is a different page: shared pages show as equal ones."""
    count = itertools.count()
    return ScriptedLLM(reply=lambda m: f"Doc 1: generation {next(count)}")


@pytest.mark.parametrize(
    ("temperature", "deduplicate", "generated"),
    [
        (0.8, "auto", 4),  # sampling: each of the 4 identical requests gets its own page, as in the original
        (0.0, "auto", 1),  # greedy: one generation would give 4 equal pages anyway
        (0.8, "always", 1),  # asked for: cheaper, one page for all
        (0.0, "never", 4),
    ],
)
def test_identical_requests_are_generated_independently_unless_sharing_changes_nothing(temperature, deduplicate,
                                                                                        generated):
    llm = numbered_llm()
    backend = SimulatedBackend(llm, sampling=Sampling(temperature=temperature), deduplicate=deduplicate)
    pages = backend.search([req(sample_id=f"s{i}") for i in range(4)])  # one GRPO group, one query
    assert len(llm.calls) == 1 and len(llm.calls[0]) == generated
    assert len({p[0].text for p in pages}) == generated
    assert len({id(p) for p in pages}) == 4  # independent lists, even when shared
    m = backend.metrics()
    assert (m["search/queries"], m["search/generated"], m["search/deduplicated"]) == (4, generated, 4 - generated)
    assert m["search/prompt_tokens"] == 10 * generated and m["search/latency_s"] == 0.5 * generated


def test_sharing_is_by_prompt_and_every_counter_counts_requests_or_generations():
    llm = numbered_llm()
    backend = SimulatedBackend(llm, sampling=Sampling(temperature=0.0))
    same = req(sample_id="a")
    batch = [same, req(sample_id="b"), req(noisy=True), req(query="other"), req(question="Another question?"),
             req(answers=("Lima", "Ciudad de los Reyes"))]  # the last one's prompt is the first's: same first gold
    pages = backend.search(batch)
    assert len(llm.calls[0]) == 4
    assert pages[0] == pages[1] == pages[5] and len({p[0].text for p in pages}) == 4
    m = backend.metrics()
    assert (m["search/queries"], m["search/generated"], m["search/deduplicated"]) == (6, 4, 2)
    assert (m["search/noisy"], m["search/useful"]) == (1, 5)
    assert m["search/prompt_tokens"] == 40 and m["search/latency_s"] == 2.0


def test_unknown_deduplicate_is_rejected():
    with pytest.raises(ValueError, match="valid: auto, always, never"):
        SimulatedBackend(ScriptedLLM(), deduplicate="sometimes")  # type: ignore[arg-type]


def test_topk_and_parse_failures_are_counted():
    llm = ScriptedLLM(reply=lambda m: "chatter only" if "bad" in m else FIVE)
    backend = SimulatedBackend(llm, topk=2)
    pages = backend.search([req(query="good"), req(query="bad one")])
    assert [len(p) for p in pages] == [2, 1]
    assert backend.metrics()["search/parse_failures"] == 1


def test_failures_raise_or_become_counted_documents():
    llm = ScriptedLLM(fail=lambda m: "broken" in m)
    with pytest.raises(SearchError, match=r"simulate_sft: http://sim:1/v1: HTTP 500"):
        SimulatedBackend(llm).search([req(query="fine"), req(query="broken")])
    soft = SimulatedBackend(llm, on_error="document")
    pages = soft.search([req(query="fine"), req(query="broken")])
    assert len(pages[0]) == 5 and pages[0][0].id != "search-failed"  # the neighbour is untouched
    assert [d.id for d in pages[1]] == ["search-failed"] and "HTTP 500" in pages[1][0].text
    assert soft.metrics()["search/failures"] == 1


def test_sampling_reaches_the_llm():
    seen = []

    class Spy(ScriptedLLM):
        def generate(self, messages, sampling):
            seen.append(sampling)
            return super().generate(messages, sampling)

    SimulatedBackend(Spy(), sampling=Sampling(temperature=0.3, max_new_tokens=50)).search([req()])
    assert seen == [Sampling(temperature=0.3, max_new_tokens=50)]


def test_unknown_mode_is_rejected():
    with pytest.raises(ValueError, match="valid: sft, prompt"):
        SimulatedBackend(ScriptedLLM(), mode="fewshot")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="valid: zerosearch, own"):
        SimulatedBackend(ScriptedLLM(), mode="prompt", prompt="mine")  # type: ignore[arg-type]
