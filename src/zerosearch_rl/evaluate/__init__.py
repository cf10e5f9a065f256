"""Evaluation: methods (direct, cot, rag, agent), the resumable harness, reports and comparisons."""

from zerosearch_rl.evaluate.harness import EvalReport, evaluate
from zerosearch_rl.evaluate.methods import METHODS, get_method
from zerosearch_rl.evaluate.report import compare

__all__ = ["METHODS", "EvalReport", "compare", "evaluate", "get_method"]
