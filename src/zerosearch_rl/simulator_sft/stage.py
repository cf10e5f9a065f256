"""Simulator fine-tuning as one pipeline stage: collect, label, train, then score tuned and untuned.

The demos (the tiny world, the real-LM recipe) run the four ``zerosearch sim`` steps back to back with the
scripted collector; this is that sequence once, resumable: a simulator already tuned (its ``config.json``
on disk) is not tuned again, only scored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zerosearch_rl.config import Config, load_config


def tune_and_score(cfg: Config, untuned: Path, engine_overrides: list[str],
                   client_overrides: tuple[str, ...] = ()) -> tuple[Path, dict[str, Any]]:
    """Tune ``cfg.sim.base_model`` on searches of ``cfg.data.train_files`` against the real engine
    (``engine_overrides``: its ``search.*`` keys); score it and ``untuned`` on the held-out pages,
    each score written to ``score_untuned`` / ``score_tuned`` beside ``cfg.sim.score_dir``. Returns the
    tuned simulator's folder and both scores (``ScoreReport.to_json``)."""
    from zerosearch_rl.data import load_examples
    from zerosearch_rl.llm import build_chat_llm
    from zerosearch_rl.llm.base import Sampling
    from zerosearch_rl.search import build_backend
    from zerosearch_rl.simulator_sft import (
        build_judge,
        collect_searches,
        label_records,
        read_records,
        score_simulator,
        train_simulator,
        write_score,
        write_sft_set,
    )
    from zerosearch_rl.simulator_sft.collect import ScriptedCollector

    s = cfg.sim
    tuned = Path(s.output_dir)
    if not (tuned / "config.json").is_file():
        engine = build_backend(load_config(None, engine_overrides))
        try:
            collect_searches(load_examples(list(cfg.data.train_files)), ScriptedCollector(), engine, s.records_path)
        finally:
            engine.close()
        label_records(s.records_path, s.labelled_path, build_judge(s), s.balance, s.seed)
        write_sft_set(s.labelled_path, s.sft_path, s.heldout_path, s.heldout_share, s.seed, s.noisy_pages)
        train_simulator(s.sft_path, s.base_model, tuned, s, system_message=cfg.simulator.system_message)
    held = read_records(s.heldout_path, labelled=True, with_documents=True)[: s.score_limit]
    scores = {}
    for label, model in (("untuned", untuned), ("tuned", tuned)):
        llm = build_chat_llm(load_config(None, ["simulator.client=transformers", f"simulator.model={model}",
                                                *client_overrides]).simulator)
        report = score_simulator(held, llm, str(model), sampling=Sampling(0.0, max_new_tokens=s.score_max_new_tokens))
        write_score(report, Path(s.score_dir).parent / f"score_{label}")
        scores[label] = report.to_json()
    return tuned, scores
