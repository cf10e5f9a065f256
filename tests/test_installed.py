"""The package works installed from its wheel, away from a clone: the wheel is built from the sources, installed
into a fresh venv that cannot see the editable install, and its `zerosearch` command runs from a folder outside
the repository. Every file the library reads (the world's presets, the original scripts' presets, the shipped
models) must therefore come from the wheel.

The fresh venv borrows the dependencies (torch, transformers, ...) of the venv running the tests through a
``.pth`` line naming that venv's site-packages; Python does not read the ``.pth`` files of a folder added
that way, so the editable install's ``__editable__*.pth`` (which puts the clone's ``src/`` on the path) stays
out. Offline: ``pip wheel --no-build-isolation`` builds with the setuptools of this venv.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

from zerosearch_rl.world.pipeline import BASE_METHODS, RL_RUNS

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel of this checkout installed (no editable install); returns its root."""
    root = tmp_path_factory.mktemp("installed")
    source = root / "source"  # a copy, so the build's build/ and *.egg-info never land in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "wheel", str(source), "--no-deps",
                    "--no-build-isolation", "--no-index", "-q", "-w", str(root / "dist")], check=True, env=_clean_env())
    (wheel,) = (root / "dist").glob("zerosearch_rl-*.whl")
    env = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    site = Path(_run(env, "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "_test_dependencies.pth").write_text("\n".join(sorted(deps)) + "\n", encoding="utf-8")
    # pip (borrowed too) run by the new venv's Python installs there, `zerosearch` script included;
    # --ignore-installed: this venv's own record of zerosearch-rl (the editable one) is not the new venv's.
    _run(env, "python", "-m", "pip", "--disable-pip-version-check", "install", "--no-deps", "--no-index",
         "--ignore-installed", "-q", str(wheel))
    return env


def _clean_env() -> dict[str, str]:
    """This process's environment without PYTHONPATH (the test run puts the checkout's src/ there)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return {**env, "HF_HUB_OFFLINE": "1", "PYTHONNOUSERSITE": "1"}


def _run(env: Path, program: str, *args: str, cwd: Path | None = None) -> str:
    done = subprocess.run([str(env / "bin" / program), *args], cwd=cwd, env=_clean_env(), capture_output=True,
                          text=True, timeout=1800)
    assert done.returncode == 0, f"{program} {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _package(env: Path) -> Path:
    return Path(_run(env, "python", "-c", "import zerosearch_rl; print(zerosearch_rl.__file__)").strip()).parent


def test_the_installed_package_is_the_wheel_not_the_checkout(installed):
    package = _package(installed)
    assert package.is_relative_to(installed), package
    path = _run(installed, "python", "-c", "import sys; print('\\n'.join(sys.path))").split("\n")
    assert not any(Path(p).resolve().is_relative_to(REPO / "src") for p in path if p), path
    assert (package / "presets" / "world" / "grpo_bm25.yaml").is_file()
    script = (installed / "bin" / "zerosearch").read_text(encoding="utf-8").splitlines()[0]
    assert Path(script.removeprefix("#!")).parent == installed / "bin", script  # the command runs this Python


def test_config_show_prints_a_shipped_preset(installed, tmp_path):
    preset = _package(installed) / "presets" / "world" / "grpo_bm25.yaml"
    shown = yaml.safe_load(_run(installed, "zerosearch", "config", "show", str(preset), cwd=tmp_path))
    written = yaml.safe_load(preset.read_text(encoding="utf-8"))
    for section, values in written.items():
        for field, value in values.items():
            assert shown[section][field] == value, f"{section}.{field}"


def test_the_original_script_front_door_finds_its_preset(installed, tmp_path):
    out = _run(installed, "zerosearch", "script", "train_grpo.sh", "TOTAL_STEPS", "7", "--dry-run", cwd=tmp_path)
    preset = _package(installed) / "presets" / "zerosearch" / "grpo.yaml"
    assert f"--config {preset}" in out
    shown = yaml.safe_load(out)  # the comment lines are YAML comments
    assert shown["algorithm"]["advantage"] == "grpo" and shown["trainer"]["total_steps"] == 7


def test_world_demo_runs_from_the_wheel(installed, tmp_path):
    out = tmp_path / "demo"
    stdout = _run(installed, "zerosearch", "world", "demo", "--size", "micro", "--out", str(out), cwd=tmp_path)
    table = (out / "table.md").read_text(encoding="utf-8")
    labels = [*BASE_METHODS.values(), *(f"after RL with the {name}" for name in RL_RUNS)]
    rows = [line for line in table.splitlines() if line.startswith("|") and any(lb in line for lb in labels)]
    assert len(rows) == len(labels), table
    assert table.strip() in stdout and (out / "em.png").is_file()
