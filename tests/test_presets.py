from __future__ import annotations

from pathlib import Path

import pytest

from zerosearch_rl.config import load_config

PRESETS = sorted([*Path("configs").glob("*.yaml"), *Path("configs/zerosearch").glob("*.yaml")])


def test_there_are_presets_for_every_algorithm():
    advantages = {load_config(p).algorithm.advantage for p in PRESETS}
    assert {"grpo", "gae", "reinforce"} <= advantages


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_every_preset_is_a_valid_config(path):
    cfg = load_config(path)
    for data_file in cfg.data.train_files:
        if not data_file.startswith(("data/", "ZeroSearch_dataset/")):  # GPU presets: data the user downloads
            assert Path(data_file).is_file(), data_file
