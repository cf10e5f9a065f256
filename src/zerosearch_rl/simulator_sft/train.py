"""Step 4: supervised fine-tuning of a causal LM into a search simulator, with TRL's ``SFTTrainer``.

The SFT set is a prompt-completion dataset, so TRL computes the loss on the completion only (the
prompt's labels are -100). The prompt reaches the model exactly as the ``simulate_sft`` engine's
in-process client (``TransformersChat``) will send it: as the user message of the chat template, after
the same system message (``llm.base.chat_messages``), when the tokenizer has one (a conversational
example), else as plain text continued by the completion
(the ``Doc N:`` lines after the prompt's final newline, then end-of-sequence). So any Hugging Face
tokenizer works, including a word-level ``PreTrainedTokenizerFast`` without a chat template.

Full fine-tuning or LoRA (peft; the adapters are merged before saving). The weights stay float32;
``sim.autocast`` runs the matrix products in bf16 (on by default on a GPU that has it; on a CPU only when
asked: it pays on CPUs with AMX). Gradient checkpointing is forced off on the CPU, where it only costs time.
The result is a plain model folder: ``simulator.model=DIR`` with ``search.backend=simulate_sft`` loads it
unchanged, and sglang / vLLM can serve it.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from zerosearch_rl.config import ModelConfig, SimConfig
from zerosearch_rl.llm.base import chat_messages
from zerosearch_rl.simulator_sft.dataset import read_sft_set

SUMMARY_FILE = "sft_summary.json"
log = logging.getLogger(__name__)


def _progress_callback(show: bool) -> Any:
    """A ``TrainerCallback`` that draws the fine-tuning as one of our bars (the running loss beside it) and sends
    the Trainer's log records (loss, learning rate, … per logging step) to this module's logger at INFO, which
    a pipeline stage keeps in its log file; it replaces the Trainer's own tqdm bar and printed dicts."""
    from transformers import TrainerCallback

    from zerosearch_rl.console import progress

    class _Progress(TrainerCallback):  # type: ignore[misc]
        def __init__(self) -> None:
            self.stack, self.done = ExitStack(), 0
            self.bar: Any = None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.bar = self.stack.enter_context(progress("fine-tune", state.max_steps, show=show))

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.bar is not None:
                self.bar.advance(state.global_step - self.done)
                self.done = state.global_step

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
                   **kwargs: Any) -> None:
            log.info("step %d: %s", state.global_step, json.dumps(logs or {}))
            if self.bar is not None and logs and "loss" in logs:
                self.bar.advance(0, info=f"loss {float(logs['loss']):.3f}")

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.stack.close()
            self.bar = None

    return _Progress()


def _examples(rows: list[dict[str, str]], chat: bool, system_message: str | None) -> list[dict[str, Any]]:
    if chat:
        return [{"prompt": chat_messages(r["prompt"], system_message),
                 "completion": [{"role": "assistant", "content": r["completion"]}]} for r in rows]
    return [{"prompt": r["prompt"], "completion": r["completion"]} for r in rows]


def build_sft_trainer(sft_path: str | Path, base_model: str, work_dir: str | Path, sim: SimConfig,
                      show_progress: bool = True, system_message: str | None = "") -> Any:
    """The configured ``SFTTrainer`` (model loaded, dataset tokenized and masked), not yet trained;
    ``system_message`` is the one the simulator will be served with (``simulator.system_message``)."""
    from zerosearch_rl.config import ConfigError

    if not base_model:
        raise ConfigError("sim.base_model is empty: name the model to fine-tune (a local directory, tiny-random, "
                          "or smollm2-135m-instruct)")
    rows = read_sft_set(sft_path)  # bad data fails before the heavy imports below

    try:
        import datasets
        from datasets import Dataset
        from trl import SFTConfig, SFTTrainer
    except ImportError as exc:
        raise ImportError(f"sim train needs TRL and datasets ({exc.name} is missing): "
                          f"pip install 'zerosearch-rl[sim]'") from exc
    import torch

    from zerosearch_rl.llm.hf import resolve_device
    from zerosearch_rl.policy import load_policy

    device = resolve_device(sim.device)
    model_cfg = ModelConfig(policy=base_model, device=sim.device, lora_rank=sim.lora_rank, lora_alpha=sim.lora_alpha,
                            lora_dropout=sim.lora_dropout, lora_target_modules=sim.lora_target_modules)
    model, tokenizer = load_policy(model_cfg, sim.seed, key="sim.base_model")
    chat = bool(getattr(tokenizer, "chat_template", None))
    cpu = device.type == "cpu"
    bf16 = sim.autocast == "bf16" or (sim.autocast == "auto" and not cpu and torch.cuda.is_bf16_supported())
    args = SFTConfig(
        output_dir=str(work_dir), learning_rate=sim.lr, num_train_epochs=sim.epochs,
        per_device_train_batch_size=sim.train_batch_size, gradient_accumulation_steps=sim.grad_accum,
        max_length=sim.max_length, completion_only_loss=True, seed=sim.seed, data_seed=sim.seed,
        bf16=bf16, fp16=False, activation_checkpointing=sim.gradient_checkpointing and not cpu, use_cpu=cpu,
        report_to="none", save_strategy="no", logging_steps=0.05, logging_strategy="steps",
        disable_tqdm=True, dataset_num_proc=None,  # our bar instead (_progress_callback)
    )
    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # one bar per preparation pass of a few rows is noise; training keeps its own
    try:
        from transformers.trainer_callback import PrinterCallback

        dataset = Dataset.from_list(_examples(rows, chat, system_message))
        trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
        trainer.remove_callback(PrinterCallback)  # it prints every log record as a raw dict
        trainer.add_callback(_progress_callback(show_progress))
        return trainer
    finally:
        if bars:
            datasets.enable_progress_bars()


def _save_atomically(model: Any, tokenizer: Any, target: Path, summary: dict[str, Any]) -> None:
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    old = target.with_name(f".{target.name}.old")
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def train_simulator(sft_path: str | Path, base_model: str, output_dir: str | Path, sim: SimConfig | None = None,
                    show_progress: bool = True, system_message: str | None = "") -> Path:
    """Fine-tune ``base_model`` on the SFT set and save the simulator (LoRA merged) to ``output_dir``.

    ``sim`` holds the hyper-parameters (lr, epochs, batch size, max length, LoRA, device, seed);
    ``system_message`` is ``simulator.system_message`` (see ``build_sft_trainer``);
    ``output_dir`` also receives ``sft_summary.json`` (losses, sizes, settings). Returns ``output_dir``.
    """
    sim = sim or SimConfig()
    target = Path(output_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = target.with_name(f".{target.name}.work")
    start = time.perf_counter()
    trainer = build_sft_trainer(sft_path, base_model, work, sim, show_progress, system_message)
    result = trainer.train()
    losses = [row["loss"] for row in trainer.state.log_history if "loss" in row]
    model = trainer.model
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    summary = {"base_model": base_model, "sft_set": str(sft_path), "examples": len(trainer.train_dataset),
               "steps": trainer.state.global_step, "train_loss": result.training_loss,
               "first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None,
               "seconds": round(time.perf_counter() - start, 2),
               "system_message": system_message,  # serve it with the same simulator.system_message
               "settings": {k: getattr(sim, k) for k in ("lr", "epochs", "train_batch_size", "grad_accum",
                                                          "max_length", "lora_rank", "seed")}}
    _save_atomically(model.eval(), trainer.processing_class, target, summary)
    shutil.rmtree(work, ignore_errors=True)
    return target


def read_summary(model_dir: str | Path) -> dict[str, Any]:
    """The ``sft_summary.json`` that ``train_simulator`` wrote beside the model."""
    return json.loads((Path(model_dir) / SUMMARY_FILE).read_text(encoding="utf-8"))
