"""ZeroSearch's training scripts as a front door: ``train_grpo.sh``'s KEY VALUE arguments, our trainer.

The original is run as ``bash train_grpo.sh NUM_GPUS_PER_NODE 4 MODEL_PATH … DATA_PATH … TOTAL_STEPS 203 IP
localhost SEARCH_MODE simulate_sft SIMULATION_LLM … START_THRESHOLD 0 END_THRESHOLD 0.5 SEARCH_ENGINE google
MAX_TURNS 5 TOPK 5`` (its README). ``resolve`` turns those arguments into the same job here: the preset that
reproduces the script (``presets/zerosearch/{grpo,ppo,reinforce}.yaml``) plus overrides, and the command that
runs it (``torchrun`` with one process per GPU when there are several). The original reads its values by
position ($2, $4, …); here the keys are read by name, in any order, each optional (the preset's value).
Light module: no torch.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from zerosearch_rl.config import ConfigError

PRESETS = Path(__file__).resolve().parent / "presets" / "zerosearch"
SCRIPTS = {"train_grpo.sh": "grpo", "train_ppo.sh": "ppo", "train_reinforce.sh": "reinforce"}
#: The keys of the original scripts, in their order.
KEYS = ("NUM_GPUS_PER_NODE", "MODEL_PATH", "DATA_PATH", "TOTAL_STEPS", "IP", "SEARCH_MODE", "SIMULATION_LLM",
        "START_THRESHOLD", "END_THRESHOLD", "SEARCH_ENGINE", "MAX_TURNS", "TOPK")
#: SEARCH_MODE: the original's names for the real engines (its wiki retriever listens on port 6002 of
#: retriever_ip, localhost by default; google is SerpAPI).
SEARCH_MODES = {"simulate_sft": "simulate_sft", "simulate_prompt": "simulate_prompt", "google": "serpapi",
                "wiki": "remote"}
WIKI_URL = "http://localhost:6002"


@dataclass(frozen=True)
class ScriptJob:
    """What a script invocation resolves to: the preset, its overrides, and how many processes run it."""

    preset: Path
    overrides: tuple[str, ...]
    processes: int
    experiment: str

    def command(self, python: str = sys.executable) -> list[str]:
        """The command line that runs the job (one process, or ``torchrun`` with one per GPU)."""
        train = ["-m", "zerosearch_rl", "train", "--config", str(self.preset), *self.overrides]
        if self.processes == 1:
            return [python, *train]
        torchrun = str(Path(python).with_name("torchrun"))
        return [torchrun, "--standalone", "--nproc_per_node", str(self.processes), *train]

    def shell(self) -> str:
        return shlex.join(self.command())


def _pairs(args: Sequence[str]) -> dict[str, str]:
    if len(args) % 2:
        raise ConfigError(f"arguments come in KEY VALUE pairs; got {len(args)} words ending with {args[-1]!r}")
    values: dict[str, str] = {}
    for key, value in zip(args[::2], args[1::2], strict=True):
        if key not in KEYS:
            raise ConfigError(f"unknown key {key!r}; valid: {', '.join(KEYS)}")
        if key in values:
            raise ConfigError(f"key {key} given twice ({values[key]!r} and {value!r})")
        values[key] = value
    return values


def _number(key: str, value: str, kind: type) -> str:
    try:
        kind(value)
    except ValueError:
        raise ConfigError(f"{key} {value!r}: expected {'an integer' if kind is int else 'a number'}") from None
    return value


def resolve(script: str, args: Sequence[str], extra: Sequence[str] = ()) -> ScriptJob:
    """The job that ``bash SCRIPT ARGS…`` of the original runs, here; ``extra`` are our own ``a.b=c`` overrides,
    applied last."""
    if script not in SCRIPTS:
        raise ConfigError(f"unknown script {script!r}; valid: {', '.join(SCRIPTS)}")
    v = _pairs(args)
    out: list[str] = []
    if "MODEL_PATH" in v:
        out.append(f"model.policy={v['MODEL_PATH']}")
    if "DATA_PATH" in v:
        data = v["DATA_PATH"].rstrip("/")
        out += [f"data.train_files=[{data}/train.parquet]", f"data.eval_files=[{data}/test.parquet]"]
    if "TOTAL_STEPS" in v:
        out.append(f"trainer.total_steps={_number('TOTAL_STEPS', v['TOTAL_STEPS'], int)}")
    if "IP" in v:  # ask_llm picks one of the comma-separated hosts, port 6001
        urls = ",".join(f"http://{ip.strip()}:6001/v1" for ip in v["IP"].split(",") if ip.strip())
        out.append(f"simulator.base_urls=[{urls}]")
    if "SEARCH_MODE" in v:
        mode = v["SEARCH_MODE"]
        if mode not in SEARCH_MODES:
            raise ConfigError(f"SEARCH_MODE {mode!r}; valid: {', '.join(SEARCH_MODES)}")
        out.append(f"search.backend={SEARCH_MODES[mode]}")
        if mode == "wiki":
            out.append(f"search.urls=[{WIKI_URL}]")
    for key, field, kind in (("START_THRESHOLD", "curriculum.start", float), ("END_THRESHOLD", "curriculum.end", float),
                             ("MAX_TURNS", "rollout.max_turns", int), ("TOPK", "search.topk", int)):
        if key in v:
            out.append(f"{field}={_number(key, v[key], kind)}")
    processes = int(_number("NUM_GPUS_PER_NODE", v.get("NUM_GPUS_PER_NODE", "1"), int))
    if processes < 1:
        raise ConfigError(f"NUM_GPUS_PER_NODE {processes}: expected at least 1")
    algorithm = SCRIPTS[script]
    # the original's EXPERIMENT_NAME (its checkpoint folder), when every part of it is given; else the preset's folder
    named = ("MODEL_PATH", "SEARCH_MODE", "SIMULATION_LLM", "START_THRESHOLD", "END_THRESHOLD", "SEARCH_ENGINE",
             "MAX_TURNS")
    experiment = f"zerosearch_{algorithm}"
    if all(k in v for k in named):
        experiment = (f"{Path(v['MODEL_PATH']).name}_{algorithm.upper()}_{v['SEARCH_MODE']}_{v['SIMULATION_LLM']}_"
                      f"{v['START_THRESHOLD']}_{v['END_THRESHOLD']}_{v['SEARCH_ENGINE']}_turns_{v['MAX_TURNS']}")
        out.append(f"trainer.output_dir=runs/{experiment}")
    return ScriptJob(PRESETS / f"{algorithm}.yaml", (*out, *extra), processes, experiment)
