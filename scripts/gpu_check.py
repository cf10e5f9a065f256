"""Device check: two GRPO steps under ``torchrun`` with NCCL, on a tiny model built from a config.

What it shows on a GPU machine (about a minute; nothing is downloaded): the trainer joins an NCCL process
group even alone (``--nproc_per_node 1``), each process trains on its own GPU (``LOCAL_RANK``), every
collective runs on tensors on that GPU, and the replicas end with the same weights. It prints the process
group's backend and device, the weights' checksum per process and each step's phase times.

    python scripts/gpu_check.py                  # one GPU, NCCL
    python scripts/gpu_check.py --processes 2    # two GPUs
    python scripts/gpu_check.py --device cpu     # the same run on the CPU with gloo (checks this script)

Exit code 0 when the run finished on the expected backend with identical replicas, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHASES = ("time/generate", "time/search", "time/reference", "time/update", "time/weight_sync", "time/step")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=1, help="processes (one GPU each)")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--timeout", type=int, default=300, help="seconds before the run is abandoned")
    args = parser.parse_args()
    import torch

    if args.device == "cuda" and torch.cuda.device_count() < args.processes:
        print(f"needs {args.processes} CUDA device(s), torch sees {torch.cuda.device_count()}: "
              f"run with --device cpu to check the script on the CPU")
        return 1
    torchrun = Path(sys.executable).with_name("torchrun")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        cmd = [str(torchrun), "--standalone", "--nproc_per_node", str(args.processes), "-m", "zerosearch_rl", "train",
               "--config", str(ROOT / "configs" / "smoke.yaml"), f"model.device={args.device}",
               f"trainer.output_dir={out}", "trainer.save_every=0", f"trainer.batch_size={2 * args.processes}",
               f"data.train_files=[{ROOT / 'src' / 'zerosearch_rl' / 'assets' / 'mini_qa.jsonl'}]"]
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""} if args.device == "cpu" else dict(os.environ)  # gloo
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, env=env, cwd=ROOT)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            print(f"torchrun exited {done.returncode} after {wall:.0f} s:\n{done.stderr[-4000:]}")
            return 1
        replicas = json.loads((out / "replicas.json").read_text())
        steps = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    expected = "nccl" if args.device == "cuda" else "gloo"
    sums = replicas["parameter_sums"]
    print(f"torch {torch.__version__}, {args.processes} process(es), backend {replicas['backend']}, "
          f"rank 0 on {replicas['device']}, {wall:.0f} s wall")
    print("parameter checksum per process: " + ", ".join(f"{s:.10g}" for s in sums))
    print("step  " + "  ".join(f"{p.removeprefix('time/'):>11}" for p in PHASES) + "   reward")
    for row in steps:
        print(f"{row['step']:>4}  " + "  ".join(f"{row.get(p, 0.0):>10.3f}s" for p in PHASES)
              + f"   {row['reward/mean']:.3f}")
    ok = replicas["backend"] == expected and len(set(sums)) == 1 and len(sums) == args.processes and len(steps) == 2
    ok = ok and (args.device == "cpu" or replicas["device"].startswith("cuda"))
    print("OK" if ok else f"FAILED: expected backend {expected} and {args.processes} identical checksums")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
