"""Fine-tune a search simulator (ZeroSearch's "lightweight SFT"): collect, label, train, score.

``collect_searches`` records every search of a collector against a real engine; ``label_records``
labels each page useful or noisy and balances the classes; ``write_sft_set`` turns labelled pages into
prompt/completion pairs in the ``simulate_sft`` format; ``train_simulator`` fine-tunes a causal LM on
them (TRL ``SFTTrainer``); ``score_simulator`` measures the tuned simulator against the real engine.
"""

from zerosearch_rl.simulator_sft.collect import (
    SUB_QUESTIONS,
    Collector,
    CollectReport,
    PolicyCollector,
    ScriptedCollector,
    build_collector,
    collect_searches,
)
from zerosearch_rl.simulator_sft.dataset import SFTSet, read_sft_set, write_sft_set
from zerosearch_rl.simulator_sft.label import (
    AnswerInDocsJudge,
    Judge,
    LabelReport,
    LLMJudge,
    OutcomeJudge,
    build_judge,
    label_records,
)
from zerosearch_rl.simulator_sft.records import SearchRecord, read_records
from zerosearch_rl.simulator_sft.score import EngineFigures, ScoreReport, score_simulator, write_score
from zerosearch_rl.simulator_sft.train import train_simulator

__all__ = [
    "SUB_QUESTIONS",
    "AnswerInDocsJudge",
    "CollectReport",
    "Collector",
    "EngineFigures",
    "Judge",
    "LLMJudge",
    "LabelReport",
    "OutcomeJudge",
    "PolicyCollector",
    "SFTSet",
    "ScoreReport",
    "ScriptedCollector",
    "SearchRecord",
    "build_collector",
    "build_judge",
    "collect_searches",
    "label_records",
    "read_records",
    "read_sft_set",
    "score_simulator",
    "train_simulator",
    "write_score",
    "write_sft_set",
]
