"""Shared test set-up: `gpu` tests skip themselves when no CUDA device is present; a run in random order
(pytest-randomly, in the ``dev`` extra) ends by naming its seed."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not any(item.get_closest_marker("gpu") for item in items):
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if item.get_closest_marker("gpu"):
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int,
                            config: pytest.Config) -> None:
    """pytest-randomly prints its seed in the header, which ``-q`` (``make test``) hides: say it at the end.

    The cache is off (``-p no:cacheprovider``), so ``--randomly-seed=last`` cannot replay a run; this line can.
    """
    seed = getattr(config.option, "randomly_seed", None)
    if config.pluginmanager.hasplugin("randomly") and isinstance(seed, int):
        terminalreporter.write_line(f"tests ran in random order: the same order again with --randomly-seed={seed} "
                                    "(file order: -p no:randomly)")
