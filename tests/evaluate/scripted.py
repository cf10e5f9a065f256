"""A scripted policy for evaluation tests: known questions get known replies, so scores are known."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from zerosearch_rl.generation.base import Generated
from zerosearch_rl.generation.sampling import Sampling
from zerosearch_rl.records import QAExample
from zerosearch_rl.tiny_models import byte_tokenizer


class ScriptedGenerator:
    """A ``TokenGenerator`` whose reply is ``reply(context text)``, tokenized by a byte-level tokenizer
    (any text round-trips exactly). Records every call's batch size."""

    def __init__(self, reply: Callable[[str], str]) -> None:
        self.reply, self.tokenizer = reply, byte_tokenizer()
        self.batches: list[int] = []

    def generate(self, prompts: Sequence[Sequence[int]], max_new_tokens: Sequence[int],
                 sampling: Sampling) -> list[Generated]:
        self.batches.append(len(prompts))
        out = []
        for ids, budget in zip(prompts, max_new_tokens, strict=True):
            text = self.reply(self.tokenizer.decode(list(ids)))
            tokens = self.tokenizer(text, add_special_tokens=False)["input_ids"][:budget]
            out.append(Generated(tokens, [0.0] * len(tokens), "stop" if len(tokens) < budget else "length"))
        return out


#: (id, source, question, gold answers, what the model answers). Hand-computed scores in the tests.
ITEMS = (
    ("q1", "nq", "Capital of France?", ("Paris",), "<answer> Paris </answer>"),
    ("q2", "nq", "Capital of Portugal?", ("Lisbon",), "<answer> the city of Lisbon </answer>"),
    ("q3", "nq", "Capital of Peru?", ("Lima",), "<answer> Quito </answer>"),
    ("q4", "hotpotqa", "Who found radium?", ("Marie Curie",), "<answer> Curie </answer>"),
    ("q5", "hotpotqa", "Year of the moon landing?", ("1969",), "It was 1969, I think."),
)


def examples() -> list[QAExample]:
    return [QAExample(id=i, question=q, answers=a, source=s) for i, s, q, a, _ in ITEMS]


def answer_by_question(context: str) -> str:
    """The scripted reply of the item whose question is in the context (the last one named)."""
    found = [(context.rfind(q), reply) for _, _, q, _, reply in ITEMS if q in context]
    return max(found)[1] if found else "<answer> nothing </answer>"
