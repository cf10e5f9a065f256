"""``zerosearch_agent``: veRL's agent-loop plugin running our rollout driver (imports veRL; extra ``verl``).

Register it with veRL through ``actor_rollout_ref.rollout.agent.agent_loop_config_path`` pointing at a
YAML list such as ``configs/verl/agent_loop.yaml``::

    - name: zerosearch_agent
      _target_: zerosearch_rl.integrations.verl.agent_loop.ZeroSearchAgentLoop
      zerosearch_config: /abs/path/configs/verl/zerosearch_sim14b.yaml   # our search/rollout/curriculum
      overrides: []                                                     # a.b=c overrides of that file
      step_source: weights                                              # or fixed (with fixed_step)

and select it for every row with ``actor_rollout_ref.rollout.agent.default_agent_loop=zerosearch_agent``.
The ``@register`` decorator registers it too, for processes that import this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from zerosearch_rl.integrations.verl import require_verl

require_verl()

from verl.experimental.agent_loop.agent_loop import (  # noqa: E402
    AgentLoopBase,
    AgentLoopMetrics,
    AgentLoopOutput,
    register,
)

from zerosearch_rl.integrations.verl.episode import shared_runner  # noqa: E402


@register("zerosearch_agent")
class ZeroSearchAgentLoop(AgentLoopBase):
    """Think / search / answer episodes of our protocol, searches served by our backends."""

    def __init__(self, *args: Any, zerosearch_config: str = "", overrides: Sequence[str] = (),
                 step_source: str = "weights", fixed_step: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.runner = shared_runner(str(zerosearch_config), tuple(str(o) for o in overrides), self.tokenizer,
                                    engine=str(self.rollout_config.name),
                                    response_length=int(self.rollout_config.response_length),
                                    prompt_length=int(self.rollout_config.prompt_length),
                                    group_size=int(self.rollout_config.n),
                                    step_source=step_source, fixed_step=int(fixed_step))

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> AgentLoopOutput:
        out = await self.runner.run(self.server_manager, sampling_params, kwargs)
        return AgentLoopOutput(
            prompt_ids=out.prompt_ids, response_ids=out.response_ids, response_mask=out.response_mask,
            response_logprobs=out.response_logprobs, num_turns=out.num_turns,
            metrics=AgentLoopMetrics(**out.timing),
            extra_fields={"turn_scores": [], "tool_rewards": [], **out.extra},
        )
