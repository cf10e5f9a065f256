from __future__ import annotations

import json
import subprocess
import sys

import yaml

from zerosearch_rl.cli import main
from zerosearch_rl.config import Config, config_to_dict


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "zerosearch_rl", *args], capture_output=True, text=True,
                          timeout=120)


def test_help_lists_commands():
    out = run_cli("--help")
    assert out.returncode == 0
    for command in ("config", "data"):
        assert command in out.stdout


def test_config_show_prints_resolved_yaml(capsys, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("trainer:\n  seed: 4\n")
    assert main(["config", "show", str(path), "search.topk=3"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    expected = config_to_dict(Config())
    expected["trainer"]["seed"], expected["search"]["topk"] = 4, 3
    assert shown == expected


def test_config_show_overrides_without_file(capsys):
    assert main(["config", "show", "trainer.seed=5", "search.topk=2"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert (shown["trainer"]["seed"], shown["search"]["topk"]) == (5, 2)


def test_bad_key_is_one_line_exit_2_no_traceback():
    for bad, needle in (("search.topkk=3", "search.topkk"), ("search.backend=bing", "valid: simulate_prompt")):
        out = run_cli("config", "show", bad)
        assert out.returncode == 2
        assert out.stdout == ""
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0] and "Traceback" not in out.stderr


def test_config_fields_documents_a_section(capsys):
    assert main(["config", "fields", "curriculum"]) == 0
    out = capsys.readouterr().out
    assert "curriculum.base" in out and "trainer.lr" not in out


def test_data_check_counts_and_fails_cleanly(tmp_path, capsys):
    good = tmp_path / "qa.jsonl"
    good.write_text("\n".join(json.dumps({"id": str(i), "question": "Q?", "answers": ["A"], "source": s})
                              for i, s in enumerate(["nq", "nq", "hotpotqa"])))
    assert main(["data", "check", str(good)]) == 0
    out = capsys.readouterr().out
    assert "nq  2" in out and "hotpotqa  1" in out and "3 examples" in out
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "Q?"}\n')
    assert main(["data", "check", str(bad)]) == 2
    assert "row 1: missing field 'answers'" in capsys.readouterr().err
