"""A training run's folder: what it holds, and whether a new ``zerosearch train`` may use it.

The trainer writes ``metrics.jsonl``, ``config.yaml``, ``checkpoints/step-NNNNNN/`` (``checkpoint.py``),
``final/`` and, when asked for, ``tensorboard/``, ``wandb/``, ``vllm_start/``, ``replicas.json``. A folder that
holds a run is never written over by accident: a new run into it must say ``resume`` (continue from the newest
intact checkpoint) or ``overwrite`` (remove the old run's files first, so nothing of the two runs mixes).
Light module: no torch (a checkpoint is checked by its files' structure, not loaded).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import struct
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from zerosearch_rl.config import Config, config_to_dict
from zerosearch_rl.tracking import METRICS_FILE, repair_metrics

log = logging.getLogger(__name__)

STEP_PREFIX = "step-"
#: Everything a run writes into its folder: what ``overwrite`` removes (nothing else in the folder is touched).
RUN_FILES = (METRICS_FILE, "config.yaml", "checkpoints", "final", "tensorboard", "wandb", "vllm_start",
             "replicas.json", "curves.png")
#: Settings that decide the shape of a checkpoint's saved state: a resume with other values cannot load it.
STATE_KEYS = ("algorithm.advantage", "model.lora_rank", "model.lora_target_modules")


class RunError(ValueError):
    """A run folder that cannot be used as asked (one line naming the folder and what to do)."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during training; the message says at which step, and which checkpoint ``--resume`` continues from."""


def checkpoint_dir(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"{STEP_PREFIX}{step:06d}"


def checkpoint_step(path: Path) -> int:
    """The step a checkpoint folder was saved at."""
    return int(path.name[len(STEP_PREFIX):])


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints, oldest first (temporary folders of interrupted writes are ignored)."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    done = [p for p in root.iterdir() if p.name.startswith(STEP_PREFIX) and (p / "state.pt").is_file()]
    return sorted(done, key=checkpoint_step)


def run_contents(run_dir: Path) -> list[str]:
    """What makes ``run_dir`` hold a run: a line in its metrics file, a checkpoint, a final policy (empty: it holds
    none). A config.yaml and an empty metrics file alone are what a run that failed before its first step leaves;
    there is nothing in them to lose."""
    found = []
    metrics = run_dir / METRICS_FILE
    if metrics.is_file() and metrics.stat().st_size:
        lines = len(metrics.read_bytes().splitlines())
        found.append(f"{METRICS_FILE} of {lines} line{'s' if lines != 1 else ''}")
    checkpoints = list_checkpoints(run_dir)
    if checkpoints:
        found.append(f"checkpoints up to {checkpoints[-1].name}")
    if (run_dir / "final").exists():
        found.append("final/")
    return found


def _safetensors_problem(path: Path) -> str | None:
    """Why a safetensors file is not whole (None when its header and its size agree)."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            return f"{path.name} is truncated ({size} bytes)"
        (n,) = struct.unpack("<Q", head)
        if n > size - 8:
            return f"{path.name} is truncated (its header alone needs {n + 8} bytes, the file has {size})"
        try:
            header = json.loads(fh.read(n))
        except ValueError:
            return f"{path.name} has an unreadable header"
    end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + n + end != size:
        return f"{path.name} is truncated ({size} of {8 + n + end} bytes)"
    return None


def checkpoint_problem(path: Path) -> str | None:
    """Why checkpoint ``path`` cannot be resumed from (a file a crash or a full disk cut short), or None."""
    try:
        with zipfile.ZipFile(path / "state.pt"):  # torch.save's format; a cut file has no central directory
            pass
    except (zipfile.BadZipFile, OSError):
        return "state.pt is truncated or not a torch checkpoint"
    policy = path / "policy"
    weights = sorted(policy.glob("*.safetensors")) if policy.is_dir() else []
    if not weights and not any(policy.glob("*.bin")):
        return "policy/ holds no weights"
    for f in weights:
        problem = _safetensors_problem(f)
        if problem:
            return f"policy/{problem}"
    return None


def _flat(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {f"{s}.{k}": v for s, fields in raw.items() if isinstance(fields, Mapping) for k, v in fields.items()}


def config_changes(checkpoint: Path, cfg: Config) -> dict[str, tuple[Any, Any]]:
    """``key: (checkpoint's value, now)`` for every setting that differs from the checkpoint's config.yaml (read as
    plain YAML, so a checkpoint of an older release with other keys still compares)."""
    path = checkpoint / "config.yaml"
    if not path.is_file():
        return {}
    try:
        old = _flat(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    except (yaml.YAMLError, UnicodeDecodeError, AttributeError):
        return {}
    new = _flat(config_to_dict(cfg))
    return {k: (old.get(k), v) for k, v in new.items() if k in old and old[k] != v}


def describe_changes(changes: Mapping[str, tuple[Any, Any]]) -> str:
    return "; ".join(f"{k}: {a!r} in the checkpoint, {b!r} now" for k, (a, b) in changes.items())


def resume_mismatch(checkpoint: Path, cfg: Config, exc: BaseException) -> RunError:
    """The error for a checkpoint whose saved state did not load into the models ``cfg`` builds: what differs
    between the checkpoint's config and this one (the model's settings first), else the loader's first line."""
    changes = config_changes(checkpoint, cfg)
    model = {k: v for k, v in changes.items() if k.startswith(("model.", "algorithm."))}
    why = (f"its config differs: {describe_changes(model)}" if model
           else str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__)
    return RunError(f"cannot resume from {checkpoint}: its saved state does not fit the model configured now "
                    f"({why}); resume with the checkpoint's settings, or start a new run (--overwrite, or another "
                    f"trainer.output_dir)")


def check_writable(folder: Path, key: str) -> None:
    """``folder`` can be created and written: not a file, not under a file, in a folder this user may write."""
    if folder.exists() and not folder.is_dir():
        raise RunError(f"{key}={folder} is a file, not a folder")
    parent = folder
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise RunError(f"{key}={folder}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise RunError(f"{key}={folder}: no permission to write in {parent}")


def _resumable(run_dir: Path) -> tuple[Path, list[Path]]:
    """The newest intact checkpoint, and the broken ones newer than it (each named in a notice)."""
    checkpoints = list_checkpoints(run_dir)
    if not checkpoints:
        held = run_contents(run_dir)
        raise RunError(f"nothing to resume in {run_dir}: no checkpoint (it holds {', '.join(held) or 'no run'}); "
                       f"--overwrite starts the run again from step 0")
    broken: dict[Path, str] = {}
    for path in reversed(checkpoints):
        problem = checkpoint_problem(path)
        if problem is None:
            for bad, why in broken.items():
                log.warning("checkpoint %s is broken (%s)", bad, why)
            return path, list(broken)
        broken[path] = problem
    raise RunError(f"nothing to resume in {run_dir}: every checkpoint is broken ("
                   f"{'; '.join(f'{p.name}: {why}' for p, why in broken.items())}); --overwrite starts the run again "
                   f"from step 0")


def prepare_run(cfg: Config, resume: bool = False, overwrite: bool = False, writer: bool = True) -> Path | None:
    """Check ``trainer.output_dir`` before anything is loaded or written, and return the checkpoint to resume
    from (None: a new run). A folder that holds a run is refused unless ``resume`` or ``overwrite``; ``resume``
    with nothing to resume is an error; ``overwrite`` removes the old run's files (``writer`` only: the process
    that writes, rank 0). A resume whose config changes a setting that shapes the saved state (``STATE_KEYS``)
    is refused, naming the difference; other changes are noted."""
    if resume and overwrite:
        raise RunError("--resume and --overwrite exclude each other: continue the run, or replace it")
    run_dir = Path(cfg.trainer.output_dir)
    check_writable(run_dir, "trainer.output_dir")
    if resume:
        if not run_dir.is_dir():
            raise RunError(f"nothing to resume: trainer.output_dir={run_dir} does not exist")
        checkpoint, broken = _resumable(run_dir)
        changes = config_changes(checkpoint, cfg)
        fixed = {k: v for k, v in changes.items() if k in STATE_KEYS}
        if fixed:
            raise RunError(f"cannot resume from {checkpoint} with another algorithm or model: "
                           f"{describe_changes(fixed)}; resume with the checkpoint's settings, or start a new run "
                           f"(--overwrite, or another trainer.output_dir)")
        if changes:
            log.warning("resuming from %s with changed settings: %s", checkpoint.name, describe_changes(changes))
        for path in broken:  # kept for a look, out of the way of the resumed run (which saves those steps again)
            aside = path.with_name(f"broken-{path.name}")
            log.warning("resuming from %s; the broken %s is moved aside to %s", checkpoint.name, path.name, aside.name)
            if writer:
                shutil.rmtree(aside, ignore_errors=True)
                path.rename(aside)
        if writer:
            repair_metrics(run_dir / METRICS_FILE)
        return checkpoint
    held = run_contents(run_dir)
    if held and not overwrite:
        raise RunError(f"trainer.output_dir={run_dir} holds a run ({', '.join(held)}): --resume continues it, "
                       f"--overwrite replaces it, or choose another trainer.output_dir")
    if held and writer:
        for name in RUN_FILES:
            target = run_dir / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
    return None


def interrupted_message(run_dir: Path, step: int) -> str:
    """What Ctrl-C at ``step`` leaves: the checkpoint ``--resume`` continues from, or none."""
    latest = list_checkpoints(run_dir)
    if not latest:
        return (f"interrupted at step {step}; no checkpoint was saved yet (trainer.save_every); "
                f"`zerosearch train --overwrite` starts again")
    return (f"interrupted at step {step}; the last checkpoint is step {checkpoint_step(latest[-1])} ({latest[-1]}); "
            f"`zerosearch train --resume` continues from it")
