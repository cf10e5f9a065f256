"""console.stage: the libraries' output goes to the stage's log, the terminal gets our display and one line."""

from __future__ import annotations

import logging
import re
import sys
import warnings

import pytest
from tqdm import tqdm
from transformers.utils import logging as hf_logging

from zerosearch_rl.console import current_stage, progress, stage


def chatter() -> None:
    """What the libraries print during a demo, one of each kind."""
    logging.getLogger("transformers.modeling_utils").warning("a warning of transformers")
    logging.getLogger("trl.trainer").warning("a warning of TRL")
    logging.getLogger("zerosearch_rl.simulator_sft.train").info("step 1: {\"loss\": 4.8}")
    print({"loss": "1.486"}, file=sys.stderr)  # the raw dict a Trainer callback prints
    for _ in tqdm(range(3), desc="a foreign bar"):
        pass
    for _ in hf_logging.tqdm(range(3), desc="Writing model shards"):
        pass
    warnings.warn("a library's warning", UserWarning, stacklevel=1)


def test_a_stage_keeps_the_libraries_output_in_its_log_and_prints_one_line(tmp_path, capfd):
    handlers = list(logging.getLogger("transformers").handlers)
    bars = hf_logging.is_progress_bar_enabled()
    with stage("simulator SFT", tmp_path / "logs" / "sft.log") as s:
        chatter()
        s.summary = "13 steps, loss 4.81 -> 4.60"
    out, err = capfd.readouterr()
    assert err == ""
    (line,) = out.splitlines()
    assert re.fullmatch(rf"✓ simulator SFT: 13 steps, loss 4.81 -> 4.60 \(\d+ s; log {tmp_path / 'logs' / 'sft.log'}\)",
                        line), line
    log = (tmp_path / "logs" / "sft.log").read_text()
    for text in ("a warning of transformers", "a warning of TRL", "step 1: {\"loss\": 4.8}", "{'loss': '1.486'}",
                 "a foreign bar", "it/s]", "a library's warning"):
        assert text in log, text
    assert "Writing model shards" not in log  # transformers' own bars are off, not logged
    assert logging.getLogger("transformers").handlers == handlers  # all restored
    assert hf_logging.is_progress_bar_enabled() == bars
    assert current_stage() is None


def test_verbose_leaves_the_output_on_the_terminal_and_still_logs_the_records(tmp_path, capfd):
    with stage("evaluation", tmp_path / "eval.log", verbose=True):
        print({"loss": "1.486"}, file=sys.stderr)
        logging.getLogger("zerosearch_rl.x").info("an info line of ours")
    _, err = capfd.readouterr()
    assert "{'loss': '1.486'}" in err
    assert "an info line of ours" in (tmp_path / "eval.log").read_text()


def test_the_bars_of_a_stage_are_lines_of_its_one_display(tmp_path, capfd):
    with stage("RL", tmp_path / "rl.log") as s:
        with progress("collect", 4) as bar:
            bar.advance(4)
        with progress("train", 3, completed=1) as bar:
            bar.advance(info="reward 0.5")
        tasks = [(t.description, t.completed, t.total, t.fields["info"]) for t in s.progress.tasks]
    assert tasks == [("collect", 4, 4, ""), ("train", 2, 3, "reward 0.5")]
    out, _ = capfd.readouterr()
    assert out.startswith("✓ RL (") and len(out.splitlines()) == 1  # not a terminal: the display is not drawn


def test_outside_a_stage_a_bar_draws_its_own_display(capfd):
    with progress("sim collect", 2) as bar:
        bar.advance(2, info="done")
    out, _ = capfd.readouterr()
    assert "sim collect" in out and "2/2" in out and "done" in out


def test_a_failing_stage_says_where_its_log_is_and_restores_stderr(tmp_path, capfd):
    before = sys.stderr
    with pytest.raises(RuntimeError, match="boom"), stage("models", tmp_path / "models.log"):
        print("chatter before the failure", file=sys.stderr)
        raise RuntimeError("boom")
    assert sys.stderr is before
    out, err = capfd.readouterr()
    assert out.splitlines() == [f"✗ models stopped (log {tmp_path / 'models.log'})"] and err == ""
    assert "chatter before the failure" in (tmp_path / "models.log").read_text()
