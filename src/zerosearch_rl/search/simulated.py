"""The LLM-simulated search engine: the heart of ZeroSearch.

For each search call, an LLM is asked for five documents that are **useful** (they help answer the
question) or **noisy** (they look relevant but do not), the kind being the call's noise decision.
The LLM sees the question and its first gold answer (so it can write useful or misleading documents;
the original's noisy few-shot prompt shows neither); the policy never does. Two prompt modes:

* ``sft``: the prompt of the original's ``search_simulate_sft`` (Alibaba-NLP/ZeroSearch,
  ``llm_agent/generation.py``) byte for byte, first gold answer and trailing newline included
  (``tests/search/test_simulated.py::test_sft_prompt_is_the_original_byte_for_byte``): the input the
  released ``Simulation_LLM_*`` checkpoints were fine-tuned on, sent as the user message of a chat
  request after the original's empty system message (``llm.base.chat_messages``,
  ``simulator.system_message``), so those checkpoints served by sglang or vLLM behave as in the paper.
* ``prompt``: a few-shot prompt for a plain instruct model: by default (``simulator.prompt: zerosearch``)
  the original's ``search_simulate_prompt`` prompts byte for byte, George Washington Bridge demonstrations
  included (``test_zerosearch_few_shot_prompts_are_the_original_byte_for_byte``); ``own`` is ours, for small
  instruct models: both kinds see the question and answer, and the ``Doc N:`` format is spelled out.

The request is the original's too, with the defaults of ``simulator``: max_tokens 600, temperature 0.8, no
top_p (``tests/search/test_simulated_http.py::test_the_configured_request_body_is_the_originals``), and each
request is generated on its own (``SimulatedBackend``'s ``deduplicate``). The reply is parsed into documents
(``parse_documents``); ``SimulatedBackend.search_pages`` keeps it too, for ``original_page_text``, the page
the original shows the policy.
"""

from __future__ import annotations

import hashlib
import re
import time
import typing
from collections.abc import Sequence
from dataclasses import replace
from typing import Literal

from zerosearch_rl.config import SIMULATOR_PROMPTS, Deduplicate, SimulatorConfig, SimulatorPrompt
from zerosearch_rl.llm import sampling_of
from zerosearch_rl.llm.base import ChatLLM, Completion, Sampling
from zerosearch_rl.records import Document, SearchRequest
from zerosearch_rl.search.base import CountingBackend, SearchError, failure_document

Mode = Literal["sft", "prompt"]

SFT_TEMPLATE = (
    "You are the Google search engine.\n"
    "Given a query, you need to generate five {kind} documents for the query.\n"
    "\n"
    'The user is trying to answer the question: "{question}" whose answer is {answer}.\n'
    "Each document should contain about 30 words, and these documents should contain {kind} information.\n"
    "\n"
    "Query: {query}\n"
    "{Kind} Output:\n"
)
"""The prompt of ``search_simulate_sft`` in ZeroSearch's ``llm_agent/generation.py``, byte for byte (its trailing
newline included): the input the released ``Simulation_LLM_*`` checkpoints were fine-tuned on."""

NO_ANSWER = "unknown"
"""The answer slot of a request without gold answers. The original cannot run without one (``batch_search``
indexes ``ground_truth[index][0]``); here a bare question (``zerosearch search`` without ``--answer``) still
gets a page."""

ZEROSEARCH_PROMPT_TEMPLATES = {
    "useful": (
        "You are the Google search engine.\n"
        "Given a query, you need to imitate the style of the following demos and generate five useful"
        " documents for the query.\n"
        "\n"
        "Here is an example:\n"
        "Query: George Washington Bridge opening year\n"
        "Useful Output:\n"
        "Doc 1: The George Washington Bridge, an iconic structure connecting New York City to New Jersey,"
        " opened on October 25, 1931. Designed by Othmar Ammann, it marked a major milestone in civil"
        " engineering.\n"
        "Doc 2: Originally the Hudson River Bridge, the George Washington Bridge was named after the U.S.'s"
        " first president. Its 3,500-foot suspension span was the world's longest at completion in 1931.\n"
        "Doc 3: The bridge was modified in 1962 with added lower deck lanes, increasing capacity and easing"
        " congestion. This expansion transformed the bridge into a double-decked structure with twelve"
        " lanes.\n"
        "Doc 4: Constructed over four years, the George Washington Bridge's steel towers and cables"
        " exemplified engineering progress. It crucially linked New York and New Jersey's transportation"
        " networks.\n"
        "Doc 5: Handling over 103 million annual vehicles, the George Washington Bridge is globally one of"
        " the busiest. The Port Authority of NY and NJ oversees its traffic and infrastructure maintenance.\n"
        "\n"
        'The user is trying to answer the question: "{question}" whose answer is {answer}.\n'
        "You should generate documents that can help the user find the answer.\n"
        "Each document should contain about 30 words.\n"
        "You must directly output the English documents and not output any other texts.\n"
        "\n"
        "Query: {query}\n"
        "Useful Output:\n"
    ),
    "noisy": (
        "You are the Google search engine. \n"
        "Given a query, you need to imitate the style of the following demos and generate five related but"
        " noisy documents for the query.\n"
        "\n"
        "Here is an example:\n"
        "Query: George Washington Bridge opening year\n"
        "Noisy Output:\n"
        "Doc 1: The George Washington Bridge was a significant addition to New York's infrastructure, but"
        " there were many challenges during its construction, including budget overruns and worker strikes.\n"
        "Doc 2: While often mistaken for the opening of another iconic bridge, the Brooklyn Bridge, the"
        " George Washington Bridge has its own storied history involving political maneuvering and urban"
        " planning debates that shaped the bridge's final design.\n"
        "Doc 3: Discussions about the naming of the George Washington Bridge are interesting, as it was"
        " named to honor the first President of the United States. The name choice was significant given the"
        " geographical and historical implications of Washington's legacy.\n"
        "Doc 4: The bridge has been a point of contention over toll increases, traffic congestion solutions,"
        " and environmental impact assessments, which continue to affect policy decisions in the area.\n"
        "Doc 5: Considerations around the visual and architectural design of the George Washington Bridge"
        " also played a crucial role in its legacy as a landmark, balancing aesthetics with functionality.\n"
        "\n"
        "Each document should contain about 30 words, and these documents should contain related but noisy"
        " information.\n"
        "You must directly output the English documents and not output any other texts.\n"
        "\n"
        "Query: {query}\n"
        "Noisy Output:\n"
    ),
}
"""The two few-shot prompts of the original's ``search_simulate_prompt``, byte for byte (the noisy one's first
line ends with a space there too, and shows the simulator neither the question nor its answer)."""

_FEW_SHOT_QUESTION = "Which city hosted the first modern Olympic Games?"
_FEW_SHOT_ANSWER = "Athens"
_FEW_SHOT_QUERY = "first modern olympic games host city"
_FEW_SHOT_DOCS = {
    "useful": (
        "Doc 1: The first modern Olympic Games were held in Athens, Greece, in April 1896, organised by the "
        "International Olympic Committee founded two years earlier.\n"
        "Doc 2: Athens welcomed athletes from fourteen nations in 1896; the Panathenaic Stadium, rebuilt in "
        "marble, was the main venue of these first modern Games.\n"
        "Doc 3: Pierre de Coubertin's revival of the Olympics began in Athens in 1896, chosen to honour "
        "Greece as the birthplace of the ancient Games.\n"
        "Doc 4: Spyridon Louis won the first Olympic marathon in 1896, running from Marathon to the stadium "
        "in Athens, the host city of the first modern Games.\n"
        "Doc 5: The 1896 Summer Olympics in Athens featured athletics, cycling, fencing, gymnastics, "
        "shooting, swimming, tennis, weightlifting and wrestling."
    ),
    "noisy": (
        "Doc 1: The Olympic flame is lit months before each Games by the rays of the sun at the Temple of "
        "Hera in Olympia and carried by a relay of runners.\n"
        "Doc 2: Paris hosted the Summer Olympics in 1900, 1924 and 2024, making it one of the few cities to "
        "have welcomed the Games three times.\n"
        "Doc 3: The modern Olympic rings, five interlocking circles on a white field, were designed in 1913 "
        "and first flown at the 1920 Games in Antwerp.\n"
        "Doc 4: Winter sports joined the Olympic movement in 1924, when Chamonix in France held an "
        "international winter sports week later recognised as the first Winter Games.\n"
        "Doc 5: Many historians debate which sports the ancient Greeks practised; running races were "
        "certainly the oldest events at the festival of Zeus."
    ),
}
_KIND_GOAL = {
    "useful": "The results must be useful: relevant to the query, stating facts that help answer the question, "
              "including the correct answer.",
    "noisy": "The results must be noisy: they should look relevant to the query but must not contain the "
             "correct answer or anything that leads to it.",
}
OWN_PROMPT_TEMPLATE = (
    "You are a web search engine. For the search query below, write five search results, one per line, "
    "each starting with \"Doc N:\" and about 30 words long. {goal}\n"
    "\n"
    'Example. The user is trying to answer the question: "{ex_question}" whose answer is {ex_answer}.\n'
    "Query: {ex_query}\n"
    "{Kind} Output:\n"
    "{ex_docs}\n"
    "\n"
    'Now the real search. The user is trying to answer the question: "{question}" whose answer is {answer}.\n'
    "Query: {query}\n"
    "{Kind} Output:"
)

_DOC_LINE = re.compile(r"^\s*[*#>\-\s]*(?:doc(?:ument)?)\s*#?\s*(\d+)\s*\**\s*[:.)\-–]\s*\**\s*(.*)$", re.IGNORECASE)
_THINK_BLOCK = re.compile(r"^\s*<think>.*?</think>", re.DOTALL)
_TITLE = re.compile(r"^\(Title:\s*((?:[^()]|\([^()]*\))*?)\s*\)\s*(.*)$", re.DOTALL)  # "Mercury (planet)" too


def _kind(noisy: bool) -> str:
    return "noisy" if noisy else "useful"


def first_answer(answers: Sequence[str]) -> str:
    """The answer slot of every simulator prompt: the first gold answer only, as the original's
    ``ground_truth[index][0]`` (the other golds are aliases); ``NO_ANSWER`` when there is none."""
    return answers[0] if answers else NO_ANSWER


def _check_prompt(mode: Mode, prompt: SimulatorPrompt) -> None:
    if mode not in typing.get_args(Mode):
        raise ValueError(f"unknown simulator mode {mode!r}; valid: {', '.join(typing.get_args(Mode))}")
    if prompt not in SIMULATOR_PROMPTS:
        raise ValueError(f"unknown simulator prompt {prompt!r}; valid: {', '.join(SIMULATOR_PROMPTS)}")


def build_simulator_prompt(request: SearchRequest, mode: Mode, prompt: SimulatorPrompt = "zerosearch") -> str:
    """The user message asking the simulator for this request's useful or noisy documents; ``prompt`` picks
    the few-shot prompts of mode ``prompt`` (``sft`` has one prompt, the original's)."""
    _check_prompt(mode, prompt)
    kind = _kind(request.noisy)
    fields = {"kind": kind, "Kind": kind.capitalize(), "question": request.question,
              "answer": first_answer(request.answers), "query": request.query}
    if mode == "sft":
        return SFT_TEMPLATE.format(**fields)
    if prompt == "zerosearch":
        return ZEROSEARCH_PROMPT_TEMPLATES[kind].format(**fields)
    return OWN_PROMPT_TEMPLATE.format(
        goal=_KIND_GOAL[kind], ex_question=_FEW_SHOT_QUESTION, ex_answer=_FEW_SHOT_ANSWER,
        ex_query=_FEW_SHOT_QUERY, ex_docs=_FEW_SHOT_DOCS[kind], **fields)


def parse_documents(text: str, topk: int, id_prefix: str = "sim") -> tuple[list[Document], bool]:
    """Parse ``Doc N: …`` lines into documents; returns (documents, parsed_cleanly).

    Tolerates blank lines, markdown decoration (``**Doc 1:**``), numbering drift (1, 2, 2, 4), text
    wrapped over several lines, a leading ``<think>`` block, and more or fewer documents than asked.
    A document that starts with ``(Title: …)`` gets that title (``simulator_sft.records.page_text``).
    Output without any ``Doc N:`` marker falls back to one document per non-empty paragraph and is
    reported as not parsed cleanly; empty output gives no documents.
    """
    text = _THINK_BLOCK.sub("", text or "").strip()
    bodies: list[str] = []
    preamble = False
    for line in text.splitlines():
        m = _DOC_LINE.match(line)
        if m:
            bodies.append(m.group(2).strip())
        elif bodies and line.strip():
            bodies[-1] = f"{bodies[-1]} {line.strip()}".strip()
        elif line.strip():
            preamble = True
    clean = bool(bodies) and not preamble
    if not bodies:
        bodies = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text) if p.strip()]
    docs = [_document(f"{id_prefix}-{i}", b) for i, b in enumerate(bodies, start=1) if b]
    return docs[:topk], clean and bool(docs)


def _document(doc_id: str, body: str) -> Document:
    """A document from one page entry; a leading ``(Title: …)`` (the marker of ``page_text`` and of the
    policy's information block) becomes its title."""
    m = _TITLE.match(body)
    if m and m.group(2).strip():
        return Document(id=doc_id, title=m.group(1), text=m.group(2).strip())
    return Document(id=doc_id, title="", text=body)


def original_page_text(reply: str, topk: int) -> str:
    """The page the original makes of a simulator reply (``search_simulate_sft`` and ``search_simulate_prompt``):
    ``'\\n'.join(resuts.replace('\\n\\n', '\\n').split('\\n')).split(f'Doc {topk+1}')[0]``, whose join of the
    split is the identity. Each ``\\n\\n`` becomes ``\\n`` (left to right: three newlines become two), and the
    text is cut at the first ``Doc {topk+1}``, wherever it is (inside ``Doc 25`` too, for topk 1). The original's
    ``execute_predictions`` then makes the policy's observation of it: ``<information>{page.strip()}</information>``
    between blank lines."""
    return reply.replace("\n\n", "\n").split(f"Doc {topk + 1}")[0]


class SimulatedBackend(CountingBackend):
    """A search engine whose documents are written by an LLM, useful or noisy on request.

    Every request is generated on its own, as in the original: at a temperature above 0 the samples of a
    GRPO group that issue the same query get different pages. ``deduplicate`` (``simulator.deduplicate``)
    shares one generation among identical prompts of a batch: ``auto`` only when greedy (temperature 0,
    where it changes nothing), ``always`` also when sampling (cheaper, but those samples see one page),
    ``never`` not at all.
    """

    def __init__(
        self,
        llm: ChatLLM,
        mode: Mode = "sft",
        topk: int = 5,
        sampling: Sampling | None = None,
        on_error: Literal["raise", "document"] = "raise",
        prompt: SimulatorPrompt = "zerosearch",
        deduplicate: Deduplicate = "auto",
    ) -> None:
        super().__init__()
        _check_prompt(mode, prompt)
        if deduplicate not in ("auto", "always", "never"):
            raise ValueError(f"unknown deduplicate {deduplicate!r}; valid: auto, always, never")
        self.llm, self.mode, self.prompt, self.topk, self.on_error = llm, mode, prompt, topk, on_error
        self.sampling = sampling or sampling_of(SimulatorConfig())  # the simulator's defaults: top_p unset
        self.deduplicate = deduplicate
        self.name = f"simulate_{mode}"

    def search(self, requests: Sequence[SearchRequest]) -> list[list[Document]]:
        """One page of parsed documents per request; each document carries the page as the original shows it
        (``Document.page`` = ``original_page_text`` of the reply)."""
        start = time.perf_counter()
        prompts = [build_simulator_prompt(r, self.mode, self.prompt) for r in requests]
        shared = self.deduplicate == "always" or (self.deduplicate == "auto" and self.sampling.temperature == 0)
        todo = list(dict.fromkeys(prompts)) if shared else prompts
        completions = self.llm.generate(todo, self.sampling)
        if len(completions) != len(todo):
            raise SearchError(f"{self.name}: the LLM returned {len(completions)} answers for {len(todo)} prompts")
        pages = [self._page(p, c) for p, c in zip(todo, completions, strict=True)]
        if shared:
            by_prompt = dict(zip(todo, pages, strict=True))
            pages = [by_prompt[p] for p in prompts]
        self.counts.update(queries=len(requests), generated=len(todo), deduplicated=len(requests) - len(todo),
                           noisy=sum(r.noisy for r in requests), useful=sum(not r.noisy for r in requests))
        self.counts["busy_s"] += time.perf_counter() - start  # type: ignore[assignment]  # wall time in this engine
        return [list(page) for page in pages]

    def _page(self, prompt: str, completion: Completion) -> tuple[Document, ...]:
        self.counts.update(prompt_tokens=completion.prompt_tokens, completion_tokens=completion.completion_tokens)
        self.counts["latency_s"] += completion.latency_s  # type: ignore[assignment]
        if not completion.ok:
            self.counts["failures"] += 1
            if self.on_error == "raise":
                raise SearchError(f"{self.name}: {completion.error}")
            return (failure_document(completion.error or "unknown error"),)
        reply = completion.text or ""
        prefix = "sim-" + hashlib.blake2b(repr((prompt, reply)).encode(), digest_size=6).hexdigest()
        docs, clean = parse_documents(reply, self.topk, prefix)
        if not clean:
            self.counts["parse_failures"] += 1
        if not docs:
            self.counts["empty_pages"] += 1
        page = original_page_text(reply, self.topk)
        return tuple(replace(d, page=page) for d in docs)
