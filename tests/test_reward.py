"""Tests of answer extraction, the QA metrics, the format check and the response-only reward.

The golden tables are hand-checked: each case says why it is there. The property tests at the end run
the same functions on inputs nobody wrote by hand.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from zerosearch_rl.protocol import build_prompt
from zerosearch_rl.records import Document
from zerosearch_rl.reward import (
    METRICS,
    RewardScores,
    answer_in_documents,
    check_format,
    cover_em,
    exact_match,
    extract_answer,
    f1,
    normalize_answer,
    score,
    score_all,
)

EM, COVER, F1 = "exact_match", "cover_em", "f1"
METRIC_FNS: dict[str, Callable[..., float]] = {EM: exact_match, COVER: cover_em, F1: f1}

# --------------------------------------------------------------------------------------------------
# 1. Golden table of the metrics: (metric, prediction, golds, expected score)
# --------------------------------------------------------------------------------------------------

METRIC_CASES = [
    # --- case -------------------------------------------------------------------------------------
    # Case is folded: the simplest match there is.
    pytest.param(EM, "PARIS", "paris", 1.0, id="em-case-folded"),
    # Case-folding is full casefold, not lower(): ß folds to ss.
    pytest.param(EM, "Straße", "STRASSE", 1.0, id="em-casefold-sharp-s"),
    # Upper-case accented letters fold to their lower-case forms, accent kept.
    pytest.param(EM, "ZÜRICH", "zürich", 1.0, id="em-case-folds-accented-letter"),
    # --- punctuation ------------------------------------------------------------------------------
    # Trailing ASCII punctuation is deleted.
    pytest.param(EM, "Paris!", "paris", 1.0, id="em-ascii-punct-trailing"),
    # Dots inside an abbreviation are deleted, so "U.S." equals "US"...
    pytest.param(EM, "U.S.", "US", 1.0, id="em-abbreviation-dots"),
    # ...but deleting punctuation does not expand the abbreviation.
    pytest.param(EM, "U.S.", "United States", 0.0, id="em-abbreviation-not-expanded"),
    # Unicode curly double quotes are punctuation (category Pi/Pf) and go.
    pytest.param(EM, "“Hamlet”", "Hamlet", 1.0, id="em-curly-double-quotes"),
    # A curly apostrophe goes exactly like the ASCII one: "Ali’s" == "Alis" (SQuAD drops apostrophes).
    pytest.param(EM, "Ali’s", "Ali's", 1.0, id="em-curly-apostrophe"),
    # En dash and ASCII hyphen are both deleted, so the two spellings of a range are equal.
    pytest.param(EM, "1914–1918", "1914-1918", 1.0, id="em-en-dash-vs-hyphen"),
    # Deleting a dash joins its neighbours (SQuAD convention): "1914—1918" is not two tokens.
    pytest.param(EM, "1914—1918", "1914 1918", 0.0, id="em-em-dash-joins-tokens"),
    # Spanish inverted question mark and guillemets are Unicode punctuation too.
    pytest.param(EM, "¿«Qué»?", "qué", 1.0, id="em-inverted-question-guillemets"),
    # --- articles ---------------------------------------------------------------------------------
    # A leading "the" is dropped.
    pytest.param(EM, "The Beatles", "Beatles", 1.0, id="em-article-the"),
    # "a" and "an" are dropped anywhere, as whole words.
    pytest.param(EM, "an apple a day", "apple day", 1.0, id="em-articles-a-an"),
    # "the" inside a word is not an article: "Theatre" keeps its "the" (else it would equal "atre").
    pytest.param(EM, "Theatre", "atre", 0.0, id="em-the-inside-word-kept"),
    # ...and an article next to "theatre" still goes while the word stays whole.
    pytest.param(EM, "the Theatre Royal", "theatre royal", 1.0, id="em-the-before-theatre"),
    # "an" inside "Anne" is not dropped.
    pytest.param(EM, "Anne", "ne", 0.0, id="em-an-inside-word-kept"),
    # Punctuation goes before articles, so the initial "A." is dropped like an article (SQuAD quirk).
    pytest.param(EM, "A. Lincoln", "Lincoln", 1.0, id="em-initial-a-dropped"),
    # ...whereas "A.I." collapses to the word "ai", which is not an article.
    pytest.param(EM, "A.I.", "AI", 1.0, id="em-a-dot-i-is-a-word"),
    # --- unicode ----------------------------------------------------------------------------------
    # Accents are kept, as in SQuAD: Zürich is not Zurich.
    pytest.param(EM, "Zürich", "Zurich", 0.0, id="em-accent-kept"),
    # F1 agrees: the only token differs by its accent.
    pytest.param(F1, "Zürich", "Zurich", 0.0, id="f1-accent-kept"),
    # cover_em agrees: "zurich" is not a substring of "zürich".
    pytest.param(COVER, "Zürich", "Zurich", 0.0, id="cover-accent-kept"),
    # A decomposed ü (u + combining diaeresis) is NFKC-composed, so it equals the precomposed one.
    pytest.param(EM, "Zu\u0308rich", "Zürich", 1.0, id="em-decomposed-accent-composes"),
    # Full-width digits fold to ASCII digits under NFKC.
    pytest.param(EM, "１９４５", "1945", 1.0, id="em-fullwidth-digits"),
    # The "fi" ligature folds to "fi" under NFKC.
    pytest.param(EM, "ﬁnland", "Finland", 1.0, id="em-ligature"),
    # A non-breaking space separates words like a space.
    pytest.param(EM, "New\u00a0York", "new york", 1.0, id="em-nbsp"),
    # --- white space and token order --------------------------------------------------------------
    # Runs of white space (newlines too) collapse, and ends are stripped.
    pytest.param(EM, "  New \n  York\t", "new york", 1.0, id="em-whitespace-collapsed"),
    # F1 is a bag of tokens: order does not matter there...
    pytest.param(F1, "York New", "new york", 1.0, id="f1-token-order-ignored"),
    # ...but exact match is strict about it.
    pytest.param(EM, "York New", "new york", 0.0, id="em-token-order-matters"),
    # --- numbers ----------------------------------------------------------------------------------
    # The thousands separator is punctuation: "1,000" equals "1000".
    pytest.param(EM, "1,000", "1000", 1.0, id="em-thousands-separator"),
    # The decimal point is punctuation too: "3.5" normalizes to "35" (SQuAD convention)...
    pytest.param(EM, "3.5", "35", 1.0, id="em-decimal-point-deleted"),
    # ...so "3.5" is not "3 5" (two tokens).
    pytest.param(EM, "3.5", "3 5", 0.0, id="em-decimal-not-split"),
    # Partial F1 with a number: tokens [35, million] vs [35]: P=1/2, R=1 -> 2*(1/2*1)/(1/2+1) = 2/3.
    pytest.param(F1, "3.5 million", "3.5", 2 / 3, id="f1-number-partial"),
    # --- several golds ----------------------------------------------------------------------------
    # The best gold wins: the second one matches exactly.
    pytest.param(EM, "Paris", ["London", "Paris"], 1.0, id="em-max-over-golds"),
    # No gold matches: 0.
    pytest.param(EM, "Rome", ["London", "Paris"], 0.0, id="em-no-gold-matches"),
    # F1 max over golds: vs "obama" P=1/2,R=1 -> 2/3; vs "barack hussein obama" P=1,R=2/3 -> 4/5.
    pytest.param(F1, "Barack Obama", ["Obama", "Barack Hussein Obama"], 4 / 5, id="f1-max-over-golds"),
    # A tuple of golds works like a list.
    pytest.param(COVER, "in Paris", ("London", "Paris"), 1.0, id="cover-tuple-of-golds"),
    # An empty list of golds matches nothing.
    pytest.param(F1, "Paris", [], 0.0, id="f1-no-golds"),
    # --- empty answers and empty golds ------------------------------------------------------------
    # An empty prediction scores 0 even against an empty gold.
    pytest.param(EM, "", "", 0.0, id="em-empty-vs-empty"),
    # A prediction that normalizes to empty ("the") scores 0 even when the gold also normalizes to empty.
    pytest.param(EM, "the", "the", 0.0, id="em-article-only-vs-article-only"),
    # Same for cover_em: "" in "" would be True, but an empty answer never scores.
    pytest.param(COVER, "the", "the", 0.0, id="cover-article-only-vs-article-only"),
    # Same for F1.
    pytest.param(F1, "...", "!!!", 0.0, id="f1-punct-only-vs-punct-only"),
    # A gold that normalizes to empty never matches: else "" would be a substring of every answer.
    pytest.param(COVER, "anything at all", "the", 0.0, id="cover-empty-gold-never-matches"),
    # ...and an empty gold next to a real one is skipped, the real one still counts.
    pytest.param(EM, "Paris", ["the", "Paris"], 1.0, id="em-empty-gold-skipped"),
    # --- yes/no: no special case by default (section 1b) ------------------------------------------
    # cover_em never had one: it sees "yes" inside "yes it is".
    pytest.param(COVER, "yes it is", "yes", 1.0, id="cover-yes-not-special"),
    # --- partial F1 by hand -----------------------------------------------------------------------
    # [eiffel, tower, in, paris] vs [eiffel, tower]: P=2/4, R=2/2 -> 2*(1/2*1)/(1/2+1) = 2/3.
    pytest.param(F1, "the Eiffel Tower in Paris", "Eiffel Tower", 2 / 3, id="f1-pred-longer"),
    # [barack, obama] vs [barack, hussein, obama]: P=1, R=2/3 -> 2*(2/3)/(1+2/3) = 4/5.
    pytest.param(F1, "Barack Obama", "Barack Hussein Obama", 4 / 5, id="f1-gold-longer"),
    # Repeated tokens count once each: [new, new, york] & [new, york] = 2; P=2/3, R=1 -> 4/5.
    pytest.param(F1, "new new york", "New York", 4 / 5, id="f1-repeated-token-clipped"),
    # Multiset, not set, overlap: [new, new] & [new, new, york] = 2 (a set would give 1 -> 2/5);
    # P=2/2, R=2/3 -> 2*(1*2/3)/(1+2/3) = 4/5.
    pytest.param(F1, "new new", "new new york", 4 / 5, id="f1-repeated-token-multiset"),
    # One shared token of 2 and 3: P=1/2, R=1/3 -> 2*(1/6)/(1/2+1/3) = 2/5.
    pytest.param(F1, "Paris London", "London Berlin Rome", 2 / 5, id="f1-partial-both-sides"),
    # No shared token: 0.
    pytest.param(F1, "Paris", "London", 0.0, id="f1-disjoint"),
    # Exact match after normalization: F1 1.
    pytest.param(F1, "The Eiffel Tower!", "eiffel tower", 1.0, id="f1-full-match"),
    # --- cover_em is a character substring --------------------------------------------------------
    # Same string after normalization: covered.
    pytest.param(COVER, "Paris", "paris", 1.0, id="cover-equal"),
    # The gold inside a longer prediction: covered.
    pytest.param(COVER, "Paris France", "Paris", 1.0, id="cover-pred-contains-gold"),
    # The other way round is not: a short prediction does not cover a longer gold.
    pytest.param(COVER, "Paris", "Paris France", 0.0, id="cover-gold-longer-not-covered"),
    # A character substring, not a token one: "Parisian" covers "Paris".
    pytest.param(COVER, "Parisian", "Paris", 1.0, id="cover-character-substring"),
    # Normalization applies to both: punctuation and article removed before the substring test.
    pytest.param(COVER, "It is the U.S. Navy.", "US Navy", 1.0, id="cover-normalized-both-sides"),
    # The substring test is strict about order: "france paris" does not contain "paris france".
    pytest.param(COVER, "France, Paris", "Paris France", 0.0, id="cover-order-matters"),
]


@pytest.mark.parametrize(("metric", "prediction", "golds", "expected"), METRIC_CASES)
def test_metric_golden(metric: str, prediction: str, golds: str | list[str], expected: float) -> None:
    assert METRIC_FNS[metric](prediction, golds) == pytest.approx(expected)


# Golden table of whole responses: (response, golds, metric, expected extracted answer, expected score).
RESPONSE_CASES = [
    # The plain case: the stripped answer is extracted and scored.
    pytest.param("<answer> Paris </answer>", "Paris", EM, "Paris", 1.0, id="plain-answer"),
    # Think, then answer: only the answer's content is scored.
    pytest.param(
        "<think>capital of France</think><answer>Paris</answer>", "Paris", EM, "Paris", 1.0, id="think-answer"
    ),
    # No <answer> tag: nothing to score, even if the right word is in the text.
    pytest.param("I think it is Paris.", "Paris", COVER, None, 0.0, id="no-answer-tag"),
    # An answer that is never closed is not an answer.
    pytest.param("<answer> Paris", "Paris", EM, None, 0.0, id="unclosed-answer"),
    # Tags are exact and lower-case: <ANSWER> is not an answer tag.
    pytest.param("<ANSWER>Paris</ANSWER>", "Paris", EM, None, 0.0, id="upper-case-tag"),
    # Several answers: the last one wins (here the wrong one, so 0)...
    pytest.param(
        "<answer>Paris</answer><answer>London</answer>", "Paris", EM, "London", 0.0, id="last-answer-wins-wrong"
    ),
    # ...and here the right one, so 1: the first answer is not what counts.
    pytest.param(
        "<answer>London</answer><answer>Paris</answer>", "Paris", EM, "Paris", 1.0, id="last-answer-wins-right"
    ),
    # The gold appears only in the engine's <information>; the policy answered something else: 0.
    pytest.param(
        "<search>capital</search><information>Doc 1 Paris is the capital.</information><answer>Lyon</answer>",
        "Paris",
        COVER,
        "Lyon",
        0.0,
        id="gold-only-in-information",
    ),
    # An <answer> tag quoted in a document is the engine's text, not the policy's answer.
    pytest.param(
        "<search>q</search><information>Doc 1 <answer>Paris</answer></information>",
        "Paris",
        EM,
        None,
        0.0,
        id="answer-quoted-in-information",
    ),
    # A quoted answer inside <information> does not override the policy's real (earlier) answer.
    pytest.param(
        "<answer>London</answer><information><answer>Paris</answer></information>",
        "London",
        EM,
        "London",
        1.0,
        id="quoted-answer-does-not-override",
    ),
    # An unclosed <information> block hides everything after it, the answer included.
    pytest.param(
        "<search>q</search><information>Doc 1 text <answer>Paris</answer>",
        "Paris",
        EM,
        None,
        0.0,
        id="unclosed-information-hides-rest",
    ),
    # A closed <information> block hides only itself: the answer after it counts.
    pytest.param(
        "<search>q</search><information>Doc 1 London</information><think>so</think><answer>Paris</answer>",
        "Paris",
        EM,
        "Paris",
        1.0,
        id="closed-information-then-answer",
    ),
    # An empty answer is an answer (extracted as ""), but scores 0, even against a gold "the".
    pytest.param("<answer>   </answer>", "the", EM, "", 0.0, id="empty-answer-vs-empty-gold"),
    # A multi-line answer is stripped and its inner white space collapsed by normalization.
    pytest.param("<answer>\n New\nYork \n</answer>", "new york", EM, "New\nYork", 1.0, id="multiline-answer"),
    # score() uses the requested metric: partial F1 [the, eiffel, tower]->[eiffel, tower] vs [tower]:
    # P=1/2, R=1 -> 2*(1/2*1)/(1/2+1) = 2/3.
    pytest.param("<answer>the Eiffel Tower</answer>", "tower", F1, "the Eiffel Tower", 2 / 3, id="score-f1"),
    # Same response with cover_em: "tower" is a substring, so 1.
    pytest.param("<answer>the Eiffel Tower</answer>", "tower", COVER, "the Eiffel Tower", 1.0, id="score-cover"),
    # Same response with exact_match: not equal, so 0.
    pytest.param("<answer>the Eiffel Tower</answer>", "tower", EM, "the Eiffel Tower", 0.0, id="score-em"),
]


@pytest.mark.parametrize(("response", "golds", "metric", "answer", "expected"), RESPONSE_CASES)
def test_response_golden(response: str, golds: str, metric: str, answer: str | None, expected: float) -> None:
    assert extract_answer(response) == answer
    assert score(response, golds, metric) == pytest.approx(expected)


# "The answer is in these documents": the one rule of the engines demo, `sim label`, `sim score`, the world's
# measurements and the evaluation traces. Pages are (title, text) pairs.
DOC_CASES = [
    # the title alone names the answer: a hit (the world's and the simulator's pages put entities there)
    ([("Marlow", "a town on the river")], ["Marlow"], True),
    # the text names it
    ([("Ada", "Ada was born in Marlow.")], ["Marlow"], True),
    # normalized: case, articles, white space
    ([("", "born in   THE  marlow")], ["Marlow"], True),
    # punctuation is deleted (not spaced) on both sides, ASCII and Unicode, as in cover_em
    ([("", "born in St. Ives")], ["St Ives"], True),
    ([("", "the mill at Marlow\u2019s end")], ["Marlows"], True),
    ([("", "the U.S.A. team")], ["USA"], True),
    # a substring of a word counts, as in cover_em ("marlow" in "marlowe")
    ([("", "Christopher Marlowe")], ["Marlow"], True),
    # no document holds it
    ([("Ada", "born in Eldham"), ("", "nothing")], ["Marlow"], False),
    # no documents at all
    ([], ["Marlow"], False),
    # several answers: any one is enough, in any document
    ([("", "nothing"), ("", "in Eldham")], ["Marlow", "Eldham"], True),
    ([("", "nothing")], ["Marlow", "Eldham"], False),
    # an empty gold never matches (normalizes to nothing), even against empty documents
    ([("", "")], [""], False),
    # title and text are joined by a space: an answer spanning both is found
    ([("New", "York is big")], ["New York"], True),
]


@pytest.mark.parametrize(("pages", "golds", "expected"), DOC_CASES)
def test_answer_in_documents_golden(pages: list[tuple[str, str]], golds: list[str], expected: bool) -> None:
    docs = [Document(str(i), title, text) for i, (title, text) in enumerate(pages)]
    assert answer_in_documents(docs, golds) is expected
    assert answer_in_documents(docs, golds[0] if len(golds) == 1 else golds) is expected  # a str gold too


def test_answer_element_inside_an_unclosed_answer_is_the_last_complete_one() -> None:
    # The docstring promises "the content of the last complete <answer> element". In
    # "<answer> I guess <answer> Paris </answer>" that element is the inner "<answer> Paris </answer>"
    # (the outer one is never closed), and protocol.parse_action, which ends the rollout, reads "Paris".
    # The reward must score the answer the rollout ended on.
    response = "<answer> I guess <answer> Paris </answer>"
    assert extract_answer(response) == "Paris"
    assert score(response, "Paris", EM) == 1.0


# --------------------------------------------------------------------------------------------------
# 1b. F1 as ZeroSearch defines it, and HotpotQA's yes/no rule as an option
# --------------------------------------------------------------------------------------------------

# A fact of ZeroSearch's verl/utils/reward_score/qa_em.py: ``f1_score_cal`` splits both normalized strings
# into tokens, counts the multiset overlap, returns 0 when it is empty and 2PR/(P+R) otherwise. It has no
# yes/no/noanswer rule (HotpotQA's evaluation script has one). Expected values below are worked out by hand
# from that definition: (prediction, gold, F1 as the original, F1 with yes_no_rule).
YES_NO_CASES = [
    # [yes] vs [yes, it, is]: P=1, R=1/3 -> 2*(1/3)/(4/3) = 1/2; the rule gives no partial credit.
    pytest.param("yes", "yes it is", 1 / 2, 0.0, id="pred-yes-gold-longer"),
    # [yes, it, is] vs [yes]: P=1/3, R=1 -> 1/2; the rule looks at the gold as well.
    pytest.param("yes it is", "yes", 1 / 2, 0.0, id="gold-yes-pred-longer"),
    # [no, way] vs [no]: P=1/2, R=1 -> 2/3; "no" is under the rule too.
    pytest.param("no way", "No.", 2 / 3, 0.0, id="gold-no"),
    # "noanswer" is HotpotQA's third special answer: [noanswer, here] vs [noanswer] -> 2/3.
    pytest.param("noanswer here", "noanswer", 2 / 3, 0.0, id="gold-noanswer"),
    # Equal after normalization: 1 either way.
    pytest.param("No.", "no", 1.0, 1.0, id="no-equals-no"),
    # No overlap: 0 either way.
    pytest.param("yes", "no", 0.0, 0.0, id="yes-vs-no"),
    # Neither side is yes/no/noanswer: the rule changes nothing ([yes, sir] vs [yes, madam]: P=R=1/2).
    pytest.param("yes sir", "yes madam", 1 / 2, 1 / 2, id="no-side-is-special"),
]


@pytest.mark.parametrize(("prediction", "gold", "original", "with_rule"), YES_NO_CASES)
def test_f1_is_zerosearch_f1_and_the_yes_no_rule_is_an_option(prediction: str, gold: str, original: float,
                                                               with_rule: float) -> None:
    assert f1(prediction, gold) == pytest.approx(original)
    assert f1(prediction, gold, yes_no_rule=True) == pytest.approx(with_rule)
    response = f"<answer>{prediction}</answer>"
    assert score_all(response, gold).f1 == pytest.approx(original)
    rule = score_all(response, gold, F1, f1_yes_no_rule=True)
    assert rule.f1 == rule.reward == pytest.approx(with_rule)


@pytest.mark.parametrize("rule", [False, True])
def test_the_yes_no_rule_reaches_the_trainer_and_the_verl_hook(rule: bool) -> None:
    from zerosearch_rl.config import TrainerConfig
    from zerosearch_rl.integrations.verl.reward import compute_score
    from zerosearch_rl.records import Trajectory
    from zerosearch_rl.trainer import configured_reward

    assert TrainerConfig().f1_yes_no_rule is False  # the original's F1 by default
    expected = 0.0 if rule else 1 / 2  # the first row of YES_NO_CASES
    traj = Trajectory("s", "g", "Is it?", ("yes it is",), policy_text="<answer> yes </answer>")
    assert configured_reward(TrainerConfig(f1_yes_no_rule=rule))(traj).reward == pytest.approx(expected)
    verl = compute_score("nq", traj.policy_text, {"target": ["yes it is"]}, f1_yes_no_rule=rule)
    assert verl["score"] == verl["f1"] == pytest.approx(expected)


# --------------------------------------------------------------------------------------------------
# 2. check_format
# --------------------------------------------------------------------------------------------------

VALID_FORMATS = [
    pytest.param("<answer>Paris</answer>", False, id="answer-only"),
    pytest.param("<think>easy</think>\n<answer>Paris</answer>", False, id="think-answer"),
    pytest.param(
        "<think>look up</think><search>capital of France</search>\n\n<information>Doc 1 Paris</information>"
        "\n\n<think>found</think><answer>Paris</answer>",
        False,
        id="think-search-information-think-answer",
    ),
    pytest.param(
        "<search>a</search><information>x</information><search>b</search><information>y</information>"
        "<answer>Paris</answer>",
        False,
        id="two-searches-no-think",
    ),
    pytest.param(
        "<think>1</think><search>a</search><information>x</information><think>2</think>"
        "<search>b</search><information>y</information><think>3</think><answer>Paris</answer>",
        True,
        id="two-searches-require-think",
    ),
    pytest.param("  <think>t</think>  <answer>Paris</answer>\n", True, id="surrounding-whitespace"),
]


@pytest.mark.parametrize(("response", "require_think"), VALID_FORMATS)
def test_check_format_valid(response: str, require_think: bool) -> None:
    check = check_format(response, require_think=require_think)
    assert check.valid, check.reason
    assert check.reason == ""


# (response, require_think, words the reason must contain; None where any reason will do)
INVALID_FORMATS = [
    pytest.param("<think>no idea</think>", False, ["no <answer>"], id="no-answer"),
    pytest.param("", False, ["no <answer>"], id="empty-response"),
    pytest.param("So: <answer>Paris</answer>", False, ["text outside", "<answer>"], id="text-before"),
    pytest.param("<think>t</think> hmm <answer>Paris</answer>", False, ["text outside", "<answer>"], id="text-between"),
    pytest.param("<think>t <answer>Paris</answer></think>", False, ["<answer>", "inside", "<think>"], id="nested-tags"),
    pytest.param("<think>t</think><answer>Paris", False, ["<answer>", "never closed"], id="unclosed-answer"),
    pytest.param("<think>t<answer>Paris</answer>", False, ["inside", "<think>"], id="unclosed-think"),
    pytest.param("</think><answer>Paris</answer>", False, ["</think>", "without"], id="closing-without-opening"),
    pytest.param("<think>t</search>", False, ["</search>", "inside", "<think>"], id="mismatched-closing"),
    pytest.param("<search>q</search><answer>Paris</answer>", False, ["out of order"], id="search-without-information"),
    pytest.param(
        "<information>x</information><answer>Paris</answer>",
        False,
        ["out of order"],
        id="information-without-search",
    ),
    pytest.param("<answer>Paris</answer> Done.", False, ["after"], id="text-after-answer"),
    pytest.param(
        "<answer>Paris</answer><think>double-check</think>", False, ["out of order"], id="element-after-answer"
    ),
    pytest.param("<answer>A</answer><answer>B</answer>", False, ["out of order"], id="two-answers"),
    pytest.param("<think>a</think><think>b</think><answer>Paris</answer>", False, ["out of order"], id="two-thinks"),
    pytest.param("<answer>Paris</answer>", True, ["out of order"], id="require-think-missing-first"),
    pytest.param(
        "<think>t</think><search>q</search><information>x</information><answer>Paris</answer>",
        True,
        ["out of order"],
        id="require-think-missing-after-information",
    ),
]


@pytest.mark.parametrize(("response", "require_think", "words"), INVALID_FORMATS)
def test_check_format_invalid(response: str, require_think: bool, words: list[str]) -> None:
    check = check_format(response, require_think=require_think)
    assert not check.valid
    for word in words:
        assert word in check.reason, (word, check.reason)


def test_require_think_is_stricter_only_about_think() -> None:
    # The same response is valid without the requirement and invalid with it: the flag is what changes.
    response = "<search>q</search><information>x</information><think>t</think><answer>Paris</answer>"
    assert check_format(response).valid
    assert not check_format(response, require_think=True).valid


# --------------------------------------------------------------------------------------------------
# 3. score and score_all
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [score, score_all], ids=["score", "score_all"])
def test_unknown_metric_raises_with_valid_names(fn: Callable[..., object]) -> None:
    with pytest.raises(ValueError, match="unknown metric 'em'") as info:
        fn("<answer>Paris</answer>", "Paris", "em")
    for name in METRICS:
        assert name in str(info.value)


def test_metrics_registry_names() -> None:
    assert set(METRICS) == {EM, COVER, F1}


SCORE_ALL_RESPONSES = [
    pytest.param("<think>t</think><answer>the Eiffel Tower</answer>", ["tower", "Eiffel Tower"], id="answered"),
    pytest.param("<answer>Paris</answer> trailing", "Paris", id="answered-bad-format"),
    pytest.param("<answer>Lyon</answer>", "Paris", id="answered-wrong"),
    pytest.param("<think>no idea</think>", "Paris", id="no-answer"),
    pytest.param("<answer></answer>", "Paris", id="empty-answer"),
]


@pytest.mark.parametrize(("response", "golds"), SCORE_ALL_RESPONSES)
@pytest.mark.parametrize("metric", [EM, COVER, F1])
def test_score_all_agrees_with_individual_functions(response: str, golds: str | list[str], metric: str) -> None:
    scores = score_all(response, golds, metric)
    assert isinstance(scores, RewardScores)
    assert scores.exact_match == score(response, golds, EM)
    assert scores.cover_em == score(response, golds, COVER)
    assert scores.f1 == score(response, golds, F1)
    assert scores.reward == score(response, golds, metric)
    assert scores.format_valid == check_format(response).valid
    assert scores.answered == (extract_answer(response) is not None)


def test_score_all_distinguishes_the_metrics() -> None:
    # One response whose three metrics all differ, so a field wired to the wrong function would show.
    # [eiffel, tower] vs [tower]: EM 0, covered 1, F1 P=1/2, R=1 -> 2/3.
    scores = score_all("<answer>the Eiffel Tower</answer>", "tower", metric=F1)
    assert scores == RewardScores(
        reward=pytest.approx(2 / 3),
        exact_match=0.0,
        cover_em=1.0,
        f1=pytest.approx(2 / 3),
        format_valid=True,
        answered=True,
    )
    assert score_all("<answer>the Eiffel Tower</answer>", "tower", metric=COVER).reward == 1.0
    assert score_all("<answer>the Eiffel Tower</answer>", "tower", metric=EM).reward == 0.0


def test_answered_flag() -> None:
    no_answer = score_all("<think>I cannot tell.</think>", "Paris")
    assert not no_answer.answered
    assert (no_answer.reward, no_answer.exact_match, no_answer.cover_em, no_answer.f1) == (0.0, 0.0, 0.0, 0.0)
    assert not no_answer.format_valid
    empty = score_all("<answer></answer>", "Paris")
    assert empty.answered  # an empty answer is still an answer (it ended the episode)...
    assert empty.reward == 0.0  # ...that scores 0
    assert score_all("<answer>Paris</answer>", "Paris").answered


def test_default_metric_is_f1() -> None:
    # [eiffel, tower] vs [tower]: F1 2/3, which neither EM (0) nor cover_em (1) would give.
    assert score("<answer>Eiffel Tower</answer>", "tower") == pytest.approx(2 / 3)
    assert score_all("<answer>Eiffel Tower</answer>", "tower").reward == pytest.approx(2 / 3)


# --------------------------------------------------------------------------------------------------
# 4. The prompt is never scored
# --------------------------------------------------------------------------------------------------


def test_prompt_example_answer_is_never_scored() -> None:
    prompt = build_prompt("Where is X?")
    assert "<answer> Lisbon </answer>" in prompt  # the instruction's example answer
    response = "<think>I have no idea where X is.</think>"
    for metric in METRICS:
        assert score(response, "Lisbon", metric) == 0.0
    assert not score_all(response, "Lisbon").answered
    # Scoring the prompt with the response would reward the instruction's example: this is why every
    # function takes the response alone.
    for metric in METRICS:
        assert score(prompt + response, "Lisbon", metric) == 1.0


# --------------------------------------------------------------------------------------------------
# 5. Properties
# --------------------------------------------------------------------------------------------------

PROPS = settings(max_examples=200, deadline=None)

_WORDS = ["paris", "Paris", "the", "a", "an", "new", "york", "yes", "no", "1,000", "3.5", "Zürich", "theatre"]
_PUNCT = [*string.punctuation, "“", "”", "‘", "’", "–", "—", "«", "»", "¿", "¡", "…", "·"]
# Short phrases from a small vocabulary, so that predictions and golds often share tokens.
phrases = st.lists(st.sampled_from(_WORDS + _PUNCT), max_size=6).map(" ".join)
# Anything: arbitrary Unicode text, or phrases.
texts = st.one_of(st.text(max_size=30), phrases)
metric_names = st.sampled_from(sorted(METRICS))
# Letters whose upper/lower case round-trips under casefold (ASCII and Latin-1), digits, spaces and punctuation.
_CASEABLE = (
    string.ascii_letters + string.digits + " " + "".join(ch for ch in map(chr, range(0xC0, 0x100)) if ch.isalpha())
)
caseable = st.one_of(st.text(alphabet=_CASEABLE + "".join(_PUNCT), max_size=30), phrases)
punct_runs = st.text(alphabet="".join(_PUNCT) + " \t\n", max_size=5)


def _zerosearch_normalize_answer(s: str) -> str:
    """ZeroSearch's verl/utils/reward_score/qa_em.py ``normalize_answer``, verbatim but for the nesting
    (Search-R1's is the same): lower(), drop string.punctuation, drop a/an/the, collapse white space."""
    exclude = set(string.punctuation)
    s = s.lower()
    s = "".join(ch for ch in s if ch not in exclude)
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


@PROPS
@given(st.one_of(st.text(alphabet=st.characters(max_codepoint=127), max_size=30), phrases.filter(str.isascii)))
def test_normalize_is_the_originals_on_ascii(text: str) -> None:
    # Ours differs only beyond ASCII (NFKC, casefold, Unicode punctuation): on ASCII NFKC and casefold change
    # nothing that lower() does not, and every ASCII P* character is in string.punctuation.
    assert normalize_answer(text) == _zerosearch_normalize_answer(text)


@PROPS
@given(texts)
@example("e.\u0301")  # deleting "." leaves "e" + a combining acute accent that NFKC would compose
def test_normalize_is_idempotent(text: str) -> None:
    once = normalize_answer(text)
    assert normalize_answer(once) == once


@PROPS
@given(metric_names, texts, st.one_of(texts, st.lists(texts, max_size=3)))
def test_metrics_are_in_unit_interval(metric: str, prediction: str, golds: str | list[str]) -> None:
    assert 0.0 <= METRICS[metric](prediction, golds) <= 1.0


@PROPS
@given(texts, texts)
def test_exact_match_implies_cover_and_f1(prediction: str, gold: str) -> None:
    if exact_match(prediction, gold) == 1.0:
        assert cover_em(prediction, gold) == 1.0
        assert f1(prediction, gold) == 1.0


@PROPS
@given(texts)
def test_exact_match_with_itself(text: str) -> None:
    # Any text matches itself exactly, unless it normalizes to nothing (then nothing matches it).
    expected = 1.0 if normalize_answer(text) else 0.0
    for fn in METRICS.values():
        assert fn(text, text) == expected


@PROPS
@given(texts, texts)
def test_f1_is_symmetric(a: str, b: str) -> None:
    assert f1(a, b) == pytest.approx(f1(b, a))


@PROPS
@given(metric_names, caseable, caseable)
def test_metrics_ignore_case(metric: str, prediction: str, gold: str) -> None:
    fn = METRICS[metric]
    expected = fn(prediction, gold)
    assert fn(prediction.upper(), gold) == expected
    assert fn(prediction.lower(), gold) == expected
    assert fn(prediction.swapcase(), gold.upper()) == expected


@PROPS
@given(metric_names, texts, texts, punct_runs, punct_runs)
def test_metrics_ignore_surrounding_punctuation(
    metric: str, prediction: str, gold: str, before: str, after: str
) -> None:
    fn = METRICS[metric]
    assert fn(f"{before} {prediction} {after}", gold) == fn(prediction, gold)
    assert fn(f"{before}{prediction}{after}", gold) == fn(prediction, gold)


@PROPS
@given(st.text(max_size=40).filter(lambda t: "<" not in t))
def test_extract_answer_returns_stripped_content(text: str) -> None:
    assert extract_answer(f"<answer>{text}</answer>") == text.strip()
    # The last answer wins whatever the earlier one held.
    assert extract_answer(f"<answer>earlier</answer>\n<answer>{text}</answer>") == text.strip()


@PROPS
@given(metric_names, texts, texts, texts)
def test_max_over_golds(metric: str, prediction: str, g1: str, g2: str) -> None:
    fn = METRICS[metric]
    assert fn(prediction, [g1, g2]) == max(fn(prediction, g1), fn(prediction, g2))
    assert fn(prediction, [g1, g2]) == fn(prediction, [g2, g1])


@PROPS
@given(metric_names, texts, st.lists(texts, max_size=3))
def test_score_is_metric_of_extracted_answer(metric: str, answer: str, golds: list[str]) -> None:
    # For answers free of '<', score() of a one-answer response equals the metric on the stripped answer.
    answer = answer.replace("<", "")
    assert score(f"<think>t</think><answer>{answer}</answer>", golds, metric) == METRICS[metric](answer, golds)


def test_tags_quoted_inside_information_do_not_break_the_format():
    # The engine's documents may quote our tags; only the policy's own elements are checked.
    response = (
        "<search> q </search>\n\n<information>Doc 1 a page that says <answer> x </answer> and <think>"
        "</information>\n\n<answer> y </answer>"
    )
    assert check_format(response).valid
    assert extract_answer(response) == "y"
