"""veRL's custom-reward hook: our F1 reward, with EM, cover-EM and format returned as logged keys.

Point veRL at it with::

    reward.custom_reward_function.path=<site-packages>/zerosearch_rl/integrations/verl/reward.py
    reward.custom_reward_function.name=compute_score

(``python -c "import zerosearch_rl.integrations.verl.reward as r; print(r.__file__)"`` prints the path).
veRL calls ``compute_score(data_source, solution_str, ground_truth, extra_info)`` once per trajectory, with
``solution_str`` the decoded *response* (policy turns and ``<information>`` blocks, never the prompt; our agent
loop's ``extra_info["zs_policy_text"]``, the policy's own turns, is scored in its place when present) and
``ground_truth`` the row's ``reward_model.ground_truth`` (ZeroSearch/Search-R1: ``{"target": [answers]}``).
A dict result is ``{"score": reward, ...}``: veRL trains on ``score`` and keeps the other keys per sample
(validation means, rollout dumps). ``em`` is the strict exact match (Search-R1's ``em_check``); the "EM" of
ZeroSearch's validation (its ``qa_em.em_check``, a substring test) is ``cover_em``.
Every call returns the same keys, as veRL stacks them across samples.
Light module: no torch, no veRL.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zerosearch_rl.integrations.verl import EPISODE_METRICS
from zerosearch_rl.reward import METRICS, score_all


def gold_answers(ground_truth: Any) -> list[str]:
    """The gold answers of a veRL ``ground_truth``: ``{"target": [...]}``, a list, an array or one string."""
    if isinstance(ground_truth, Mapping):
        if "target" not in ground_truth:
            raise ValueError(f"ground_truth has no 'target' (keys: {', '.join(map(str, ground_truth))}); "
                             f"expected reward_model.ground_truth = {{'target': [answers]}}")
        ground_truth = ground_truth["target"]
    if hasattr(ground_truth, "tolist"):
        ground_truth = ground_truth.tolist()
    if isinstance(ground_truth, str):
        return [ground_truth]
    if isinstance(ground_truth, (list, tuple)) and ground_truth:
        return [str(a) for a in ground_truth]
    raise ValueError(f"ground_truth must be an answer, a list of answers or {{'target': [...]}}, got {ground_truth!r}")


def compute_score(data_source: str, solution_str: str, ground_truth: Any, extra_info: Mapping[str, Any] | None = None,
                  metric: str = "f1", f1_yes_no_rule: bool = False, **_: Any) -> dict[str, float]:
    """The reward of one response (``metric``: f1, exact_match or cover_em; set it through veRL's
    ``reward.custom_reward_function.reward_kwargs.metric``, and ``reward_kwargs.f1_yes_no_rule`` as
    ``trainer.f1_yes_no_rule``) and the metrics logged beside it."""
    if metric not in METRICS:
        raise ValueError(f"unknown reward metric {metric!r}; valid: {', '.join(METRICS)}")
    info = extra_info or {}
    # Our agent loop sends the policy's own text (observations emptied): a document or our feedback can then
    # never be scored as the policy's answer. Other agent loops: the decoded response.
    text = info.get("zs_policy_text")
    scores = score_all(text if isinstance(text, str) else solution_str, gold_answers(ground_truth), metric,
                       f1_yes_no_rule)
    out = {"score": scores.reward, "f1": scores.f1, "em": scores.exact_match, "cover_em": scores.cover_em,
           "format": float(scores.format_valid), "answered": float(scores.answered)}
    for name in EPISODE_METRICS:
        value = info.get(f"zs_{name}")
        out[f"zs_{name}"] = float(value) if value is not None else 0.0
    return out
