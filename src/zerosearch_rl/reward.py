"""Answer extraction, QA metrics and format checks (docs/design.md, §Rewards read the policy's text).

Every function here scores a *response* (what follows the prompt): nothing takes the prompt, so a
prompt's example answer can never be rewarded. Metrics take the max over several gold answers.

Two substring-free metrics and one substring metric, always reported under their own names:
``exact_match`` (normalized strings equal: Search-R1's ``em_check``), ``cover_em`` (normalized gold is a
substring of the normalized prediction: Search-R1's ``subem_check``, and what ZeroSearch's own
``qa_em.em_check`` computes, the "EM" of its validation and ``em`` reward option), and ``f1`` (SQuAD token
overlap, ZeroSearch's ``f1_score_cal`` and its reward). Light module: no torch.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from zerosearch_rl.protocol import ANSWER, INFORMATION, OWN_TAG, TAGS
from zerosearch_rl.records import Document, Trajectory

Golds = str | Sequence[str]

_ASCII_PUNCT = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_INFO_BLOCK = re.compile(rf"<{INFORMATION}>.*?(</{INFORMATION}>|$)", re.DOTALL)
# The content of an answer element may hold none of our tags: in "<answer> x <answer> y </answer>"
# the complete element is the inner one, as ``protocol.parse_action`` reads it.
_ANSWER_RE = re.compile(rf"<{ANSWER}>((?:(?!{OWN_TAG}).)*?)</{ANSWER}>", re.DOTALL)
_TAG_RE = re.compile(r"<(/?)(" + "|".join(TAGS) + r")>")
# HotpotQA's F1 rule, off by default: ZeroSearch's F1 (``qa_em.f1_score_cal``) has no such rule.
_NO_PARTIAL_CREDIT = frozenset({"yes", "no", "noanswer"})


def _is_punct(ch: str) -> bool:
    return ch in _ASCII_PUNCT or unicodedata.category(ch).startswith("P")


def normalize_answer(text: str) -> str:
    """SQuAD normalization, unicode-aware.

    NFKC-fold compatibility forms (full-width digits, ligatures), case-fold, delete punctuation
    (ASCII punctuation and every Unicode ``P*`` character, so curly quotes and dashes go too),
    drop the articles a/an/the, collapse white space. Accents are kept, as in SQuAD. NFKC runs again
    after punctuation is deleted, since a deletion can leave a letter and a combining mark that
    compose (this keeps the function idempotent).
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    text = unicodedata.normalize("NFKC", "".join(ch for ch in text if not _is_punct(ch)))
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _gold_list(golds: Golds) -> list[str]:
    return [golds] if isinstance(golds, str) else list(golds)


def _best(prediction: str, golds: Golds, metric: Callable[[str, str], float]) -> float:
    pred = normalize_answer(prediction)
    if not pred:
        return 0.0  # an empty answer never scores, whatever the gold
    scores = [metric(pred, g) for g in (normalize_answer(g) for g in _gold_list(golds)) if g]
    return max(scores, default=0.0)


def exact_match(prediction: str, golds: Golds) -> float:
    """1.0 when the normalized prediction equals a normalized gold answer (Search-R1's ``em_check``;
    ZeroSearch's "EM" is ``cover_em``)."""
    return _best(prediction, golds, lambda p, g: float(p == g))


def cover_em(prediction: str, golds: Golds) -> float:
    """1.0 when a normalized gold answer is a (character) substring of the normalized prediction.

    This is the "EM" of ZeroSearch: its ``qa_em.em_check`` tests ``normalize_answer(gold) in
    normalize_answer(pred)``, and that is the EM of its validation metrics and of its ``em`` reward option.
    """
    return _best(prediction, golds, lambda p, g: float(g in p))


def answer_in_documents(docs: Sequence[Document], golds: Golds) -> bool:
    """Does any document hold a gold answer? ``cover_em`` of each document's title and text: the one rule
    for "the engine returned the answer" (engine recall, simulator scores, evaluation traces)."""
    return any(cover_em(f"{d.title} {d.text}", golds) for d in docs)


def _token_f1(pred: str, gold: str) -> float:
    pred_tokens, gold_tokens = pred.split(), gold.split()
    same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def _token_f1_yes_no(pred: str, gold: str) -> float:
    if (pred in _NO_PARTIAL_CREDIT or gold in _NO_PARTIAL_CREDIT) and pred != gold:
        return 0.0
    return _token_f1(pred, gold)


def f1(prediction: str, golds: Golds, yes_no_rule: bool = False) -> float:
    """SQuAD token-overlap F1 against the best gold answer, as ZeroSearch's ``f1_score_cal``.

    ``yes_no_rule`` adds HotpotQA's rule: when the prediction or the gold normalizes to yes, no or
    noanswer, only an exact match scores (1.0), anything else 0.0, with no partial credit.
    """
    return _best(prediction, golds, _token_f1_yes_no if yes_no_rule else _token_f1)


METRICS: dict[str, Callable[[str, Golds], float]] = {
    "exact_match": exact_match,
    "cover_em": cover_em,
    "f1": f1,
}


def without_information(response: str) -> str:
    """The response with its ``<information>`` blocks (the engine's words) blanked out: the policy's own text."""
    return _INFO_BLOCK.sub(" ", response)


def extract_answer(response: str) -> str | None:
    """The content of the last complete ``<answer>`` element of the response, stripped.

    ``<information>`` blocks are emptied first: they are the engine's words, an ``<answer>`` tag quoted
    inside a document is not the policy's answer, and an element interrupted by one is not an answer.
    ``None`` when there is no answer. Scoring a rollout's episode reads its ``Trajectory.policy_text``,
    where every observation is already empty (``score_trajectory``): a document that closes its block
    early cannot leak into that.
    """
    answers = _ANSWER_RE.findall(_INFO_BLOCK.sub(f"<{INFORMATION}></{INFORMATION}>", response))
    return answers[-1].strip() if answers else None


@dataclass(frozen=True)
class FormatCheck:
    valid: bool
    reason: str = ""


def check_format(response: str, require_think: bool = False) -> FormatCheck:
    """Is the response a well-formed episode?

    Grammar over elements (only white space may sit between them):
    ``think? (search information think?)* answer`` — or with ``require_think``,
    ``think (search information think)* answer``. Elements must be closed and not nested. The
    content of ``<information>`` is the engine's text and is not parsed: a document that quotes one
    of our tags does not make the policy's response malformed.
    """
    names: list[str] = []
    open_tag: str | None = None
    pos = 0
    for m in _TAG_RE.finditer(response):
        between = response[pos : m.start()]
        pos = m.end()
        closing, name = m.group(1) == "/", m.group(2)
        if open_tag == INFORMATION and not (closing and name == INFORMATION):
            continue
        if open_tag is None:
            if between.strip():
                return FormatCheck(False, f"text outside any element before <{'/' if closing else ''}{name}>")
            if closing:
                return FormatCheck(False, f"</{name}> without an opening <{name}>")
            open_tag = name
        elif closing and name == open_tag:
            names.append(name)
            open_tag = None
        else:
            return FormatCheck(False, f"<{'/' if closing else ''}{name}> inside an open <{open_tag}>")
    if open_tag is not None:
        return FormatCheck(False, f"<{open_tag}> is never closed")
    if response[pos:].strip():
        return FormatCheck(False, "text after the last element")
    letters = "".join({"think": "t", "search": "s", "information": "i", "answer": "a"}[n] for n in names)
    pattern = r"t(sit)*a" if require_think else r"t?(sit?)*a"
    if not re.fullmatch(pattern, letters):
        if "a" not in letters:
            return FormatCheck(False, "no <answer> element")
        return FormatCheck(False, f"elements out of order: {' '.join(names)}")
    return FormatCheck(True)


@dataclass(frozen=True)
class RewardScores:
    """Every metric of one response, for logging; ``reward`` is the one chosen for training."""

    reward: float
    exact_match: float
    cover_em: float
    f1: float
    format_valid: bool
    answered: bool


def score(response: str, golds: Golds, metric: str = "f1") -> float:
    """Score a response (never the prompt) by ``metric`` on its last answer; no answer scores 0."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; valid: {', '.join(METRICS)}")
    answer = extract_answer(response)
    return 0.0 if answer is None else METRICS[metric](answer, golds)


def score_trajectory(traj: Trajectory, metric: str = "f1", f1_yes_no_rule: bool = False) -> RewardScores:
    """All metrics of an episode, read from the policy's own text (``Trajectory.policy_text``)."""
    return score_all(traj.policy_text, traj.answers, metric, f1_yes_no_rule)


def score_all(response: str, golds: Golds, metric: str = "f1", f1_yes_no_rule: bool = False) -> RewardScores:
    """All metrics of a response at once, plus the training reward by ``metric``; ``f1_yes_no_rule``
    as ``f1``'s ``yes_no_rule``."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; valid: {', '.join(METRICS)}")
    answer = extract_answer(response)
    fns = {**METRICS, "f1": partial(f1, yes_no_rule=f1_yes_no_rule)}
    values = {name: (0.0 if answer is None else fn(answer, golds)) for name, fn in fns.items()}
    return RewardScores(
        reward=values[metric],
        exact_match=values["exact_match"],
        cover_em=values["cover_em"],
        f1=values["f1"],
        format_valid=check_format(response).valid,
        answered=answer is not None,
    )
