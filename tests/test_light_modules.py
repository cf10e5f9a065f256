"""The pure core must not import torch (docs/design.md, §The pure core): it is used by servers and tools without it."""

from __future__ import annotations

import subprocess
import sys

LIGHT = ("records", "protocol", "reward", "curriculum", "config", "data", "jsonl", "cli", "search.corpus",
         "search.base", "lr_schedule", "health", "packaged_assets")


def test_light_modules_do_not_import_torch():
    code = (
        "import sys\n"
        + "".join(f"import zerosearch_rl.{m}\n" for m in LIGHT)
        + "heavy = sorted(m for m in ('torch', 'transformers', 'numpy') if m in sys.modules)\n"
        + "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == ""
