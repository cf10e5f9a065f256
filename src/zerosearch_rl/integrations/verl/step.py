"""How the current training step reaches the agent loop, for the noise curriculum (docs/design.md, §The noise draw).

veRL's agent loop is not told the training step: ``AgentLoopWorker`` keeps ``meta_info["global_steps"]``
for tracing and calls ``run(sampling_params, **dataset_fields)``. What it does carry is the version of
the policy weights: the trainer pushes ``global_steps`` to every rollout server with each weight sync
(``checkpoint_manager.update_weights(global_steps)`` before the first step and after every update), and
the servers return it with every generation (``TokenOutput.extra_fields["global_steps"]``). During the
rollouts of veRL's step ``s`` (counted from 1) the weights are version ``s - 1``: the number of updates
applied, which is exactly our 0-based curriculum step. A search happens only after a generation, so the
step is always known before a noise decision is drawn.

``WeightVersionStep`` reads it from the generator of the trajectory; ``FixedStep`` holds a constant
(evaluation, or a run that wants one noise level throughout).
"""

from __future__ import annotations

from typing import Protocol

from zerosearch_rl.integrations.verl.generator import ServerManagerGenerator

STEP_SOURCES = ("weights", "fixed")


class StepUnknown(RuntimeError):
    """The step was needed before the rollout server reported any weight version."""


class StepSource(Protocol):
    def __call__(self) -> int: ...


class WeightVersionStep:
    """The training step of one trajectory: the weight version its generations came from."""

    def __init__(self, generator: ServerManagerGenerator) -> None:
        self.generator = generator

    def __call__(self) -> int:
        version = self.generator.weight_version
        if version is None:
            raise StepUnknown("veRL's rollout server reported no weight version (TokenOutput.extra_fields"
                              "['global_steps']) with its generation, so the curriculum step is unknown; "
                              "use a rollout engine that reports it (vllm, sglang) or step_source: fixed")
        if version < 0:
            raise StepUnknown(f"veRL's rollout server reported weight version {version}; expected >= 0")
        return version


class FixedStep:
    """A constant step."""

    def __init__(self, step: int) -> None:
        if step < 0:
            raise ValueError(f"the fixed curriculum step must be >= 0, got {step}")
        self.step = step

    def __call__(self) -> int:
        return self.step
