"""veRL integration (extra ``verl``, tested against veRL >=0.9.1,<0.10): our agent, rewards and noise
curriculum inside veRL's trainer, without forking it.

- ``agent_loop.ZeroSearchAgentLoop``: an agent loop registered as ``zerosearch_agent`` that runs our
  rollout driver (``Rollout.arun_one``) over veRL's token-in/token-out generation servers, with our
  search backends answering its searches. The only module here that imports veRL.
- ``reward.compute_score``: veRL's custom-reward hook computing our F1 (EM, cover-EM, format logged).
- ``step``: how the current training step reaches the agent loop (the noise curriculum).

Everything except ``agent_loop`` works without veRL installed, so the seam is tested on any machine.
"""

from __future__ import annotations

VERL_RANGE = ">=0.9.1,<0.10"
# Per-episode counters the agent loop returns in ``extra_fields`` as ``zs_<name>``; the reward function
# logs them beside the scores (veRL hands a sample's extra fields to the reward in ``extra_info``).
EPISODE_METRICS = ("searches", "noisy_searches", "failed_searches", "invalid_actions", "truncated_observations",
                   "truncated_response")
INSTALL_HINT = "install the 'verl' extra: pip install 'zerosearch-rl[verl]' (veRL " + VERL_RANGE + ")"


class VerlMissing(ImportError):
    """veRL is not installed (or not importable here); the message says how to install it."""


def require_verl() -> None:
    """Fail with one clear line when veRL cannot be imported."""
    try:
        import verl  # noqa: F401
    except ImportError as exc:
        raise VerlMissing(f"the veRL integration needs veRL ({exc}); {INSTALL_HINT}") from None
