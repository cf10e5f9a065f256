"""The world's feasibility figures: BM25 hit rates, base-policy EM (greedy / forced to search first),
and how often the pretrained simulator's useful pages hold the answer.

    PYTHONPATH=src python benchmarks/world_measure.py --models src/zerosearch_rl/assets/world [--limit N]

``--models`` is a folder written by ``zerosearch world pretrain`` (``world/``, ``policy/``, ``simulator/``),
e.g. the shipped one. Writes ``--out`` (default runs/world_measure.json, with every policy trace) and
prints a table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def main() -> None:
    from rich.console import Console
    from rich.table import Table
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from zerosearch_rl.data import read_examples
    from zerosearch_rl.llm.transformers_chat import TransformersChat
    from zerosearch_rl.search.bm25 import BM25Backend
    from zerosearch_rl.world.measure import bm25_hits, policy_em, simulator_containment
    from zerosearch_rl.world.traces import FORCED_SEARCH_PREFIX

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="src/zerosearch_rl/assets/world")
    parser.add_argument("--index", default="runs/world_index", help="where the BM25 index is cached")
    parser.add_argument("--out", default="runs/world_measure.json")
    parser.add_argument("--world", help="world folder (default MODELS/world)")
    parser.add_argument("--limit", type=int, help="only the first N test questions")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = Path(args.models)
    world = Path(args.world) if args.world else root / "world"
    console = Console()
    test = read_examples(world / "test.jsonl")[: args.limit]
    engine = BM25Backend(world / "corpus.jsonl", topk=3, index_dir=args.index)
    out: dict = {"test_questions": len(test)}
    table = Table("measure", "single_hop", "two_hop", "all / hop1", "hop2", "seconds")

    t = time.perf_counter()
    train = read_examples(world / "train.jsonl")
    hits = bm25_hits(engine, test + train)
    out["bm25_top3"] = hits
    table.add_row("bm25 top-3 has the right doc (%)", f"{100 * hits['single']['top_k']:.0f}", "",
                  f"{100 * hits['hop1']['top_k']:.0f}", f"{100 * hits['hop2']['top_k']:.0f}",
                  f"{time.perf_counter() - t:.1f}")

    policy = AutoModelForCausalLM.from_pretrained(root / "policy").eval()
    tokenizer = AutoTokenizer.from_pretrained(root / "policy")
    sources = ("single_hop", "two_hop")
    for name, prefix in (("greedy", ""), ("forced search", FORCED_SEARCH_PREFIX)):
        t = time.perf_counter()
        score = policy_em(policy, tokenizer, engine, test, forced_prefix=prefix)
        out[f"policy_{name.replace(' ', '_')}"] = {"em": score.em, "searches": score.searches,
                                                   "traces": score.traces}
        table.add_row(f"base policy EM, {name} (searches/ep)",
                      *(f"{score.em.get(s, 0):.1f} ({score.searches.get(s, 0):.2f})" for s in sources),
                      f"{score.em['all']:.1f}", "", f"{time.perf_counter() - t:.1f}")
        console.print(f"{name}: EM {score.em}")

    sim = AutoModelForCausalLM.from_pretrained(root / "simulator").eval()
    llm = TransformersChat(sim, AutoTokenizer.from_pretrained(root / "simulator"), batch_size=64)
    for prompt in ("raw", "sft"):
        t = time.perf_counter()
        contained = simulator_containment(llm, test, prompt=prompt)
        out[f"simulator_{prompt}"] = contained
        table.add_row(f"simulator useful page has the answer (%), {prompt} prompt",
                      f"{contained.get('single', 0):.0f}", "", f"{contained.get('hop1', 0):.0f}",
                      f"{contained.get('hop2', 0):.0f}", f"{time.perf_counter() - t:.1f}")
    console.print(table)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
