"""``zerosearch sim collect|label|train|score``: tune your own search simulator (no logic here)."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from zerosearch_rl.cli.args import add_config_args
from zerosearch_rl.config import Config, ConfigError, load_config


def _config(args: argparse.Namespace) -> Config:
    return load_config(args.config, args.overrides)


def _collect(args: argparse.Namespace) -> None:
    from zerosearch_rl.data import load_examples
    from zerosearch_rl.search import build_backend
    from zerosearch_rl.simulator_sft import build_collector, collect_searches

    cfg = _config(args)
    if not cfg.data.train_files:
        raise ConfigError("sim collect needs data.train_files (the training questions to search for)")
    examples = load_examples(cfg.data.train_files, cfg.data.sources, cfg.data.limit)
    engine = build_backend(cfg, cfg.sim.engine)
    try:
        report = collect_searches(examples, build_collector(cfg), engine, cfg.sim.records_path, cfg.sim.batch_size)
    finally:
        engine.close()
    print(report.summary())


def _label(args: argparse.Namespace) -> None:
    from zerosearch_rl.simulator_sft import build_judge, label_records, write_sft_set

    sim = _config(args).sim
    judge = build_judge(sim)
    try:
        report = label_records(sim.records_path, sim.labelled_path, judge, sim.balance, sim.seed)
    finally:
        getattr(getattr(judge, "llm", None), "close", lambda: None)()
    print(report.summary())
    print(write_sft_set(sim.labelled_path, sim.sft_path, sim.heldout_path, sim.heldout_share, sim.seed,
                        sim.noisy_pages).summary())


def _train(args: argparse.Namespace) -> None:
    from zerosearch_rl.simulator_sft import train_simulator
    from zerosearch_rl.simulator_sft.train import read_summary

    cfg = _config(args)
    sim = cfg.sim
    path = train_simulator(sim.sft_path, sim.base_model, sim.output_dir, sim,
                           system_message=cfg.simulator.system_message)
    s = read_summary(path)
    print(f"trained {s['base_model']} on {s['examples']} pairs, {s['steps']} steps in {s['seconds']:.0f} s: loss "
          f"{s['first_loss']:.3f} -> {s['last_loss']:.3f}; simulator saved to {path} "
          f"(serve it with search.backend=simulate_sft simulator.model={path})")


def _score(args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    from zerosearch_rl.data import DataError
    from zerosearch_rl.llm import build_chat_llm
    from zerosearch_rl.llm.base import Sampling
    from zerosearch_rl.simulator_sft import read_records, score_simulator, write_score
    from zerosearch_rl.simulator_sft.score import HEADER, table_rows

    cfg = _config(args)
    sim = cfg.sim
    model = sim.score_model or sim.output_dir
    records = read_records(sim.heldout_path, with_documents=True)[: sim.score_limit]
    if not records:
        raise DataError(f"{sim.heldout_path}: no held-out pages (set sim.heldout_share above 0 and rerun "
                        f"`zerosearch sim label`)")
    if cfg.simulator.client != "openai" and not (Path(model) / "config.json").is_file():
        raise ConfigError(f"no simulator model at {model!r} (run `zerosearch sim train`, or set sim.score_model)")
    llm: Any = build_chat_llm(replace(cfg.simulator, model=model))
    try:
        report = score_simulator(records, llm, model, cfg.search.topk,
                                 Sampling(sim.score_temperature, cfg.simulator.top_p, sim.score_max_new_tokens),
                                 sim.batch_size)
    finally:
        llm.close()
    table = Table(*HEADER, title=f"Simulator {model} vs the real engine on {report.pairs} held-out queries")
    for row in table_rows(report):
        table.add_row(*row)
    console = Console()
    console.print(table)
    paths = write_score(report, sim.score_dir)
    console.print(f"useful/noisy document containment ratio {report.containment_ratio:.2f}; "
                  f"wrote {', '.join(str(p) for p in paths.values())}")


def register(commands: Any) -> None:
    """Add ``zerosearch sim ...`` to the CLI's subcommands."""
    sim = commands.add_parser("sim", help="fine-tune a search simulator: collect, label, train, score")
    actions = sim.add_subparsers(dest="sim_command", metavar="ACTION", required=True)
    for name, run, text in (
        ("collect", _collect, "record every search of a collector against a real engine (resumable)"),
        ("label", _label, "label pages useful/noisy, balance them, write the SFT set and held-out pages"),
        ("train", _train, "fine-tune sim.base_model on the SFT set (TRL SFTTrainer, full or LoRA)"),
        ("score", _score, "score the tuned simulator on held-out pages beside the real engine (table, JSON, PNG)"),
    ):
        action = actions.add_parser(name, help=text)
        add_config_args(action)
        action.set_defaults(run=run)
