"""The original's episode, token for token: one ZeroSearch parquet row, two searches, a final answer.

The expected ids are assembled the way Alibaba-NLP/ZeroSearch assembles them (facts from its source, restated
here): veRL's RLHFDataset in its fork renders the row's ``prompt`` messages with the tokenizer's chat template
(``add_generation_prompt=True``) and tokenizes without added special tokens; each turn's text is cut after its
first ``</search>``/``</answer>`` and tokenized; each search's observation is
``f'\\n\\n<information>{page.strip()}</information>\\n\\n'`` tokenized without special tokens and cut at
``max_obs_length`` tokens; ``max_turns`` turns may search, then one final turn answers.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from zerosearch_rl.config import RolloutConfig
from zerosearch_rl.data import load_examples
from zerosearch_rl.generation.base import Generated
from zerosearch_rl.generation.sampling import Sampling
from zerosearch_rl.llm.base import Completion
from zerosearch_rl.protocol import SEARCH_R1_INSTRUCTION
from zerosearch_rl.records import Document, SegmentKind
from zerosearch_rl.rollout import Rollout
from zerosearch_rl.search.simulated import SimulatedBackend
from zerosearch_rl.tiny_models import byte_tokenizer

# A Qwen2.5-like template: a default system prompt unless the messages bring one.
QWEN_LIKE = (
    "{% if messages[0]['role'] != 'system' %}<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a "
    "helpful assistant.<|im_end|>\n{% endif %}{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
QUESTION = "who wrote the opera carmen?"
# Fact (Search-R1 nq_search.py make_prefix): the prompt column of the field's rows.
PROMPT_TEXT = (
    "Answer the given question. You must conduct reasoning inside <think> and </think> first every time you get new "
    "information. After reasoning, if you find you lack some knowledge, you can call a search engine by <search> "
    "query </search> and it will return the top searched results between <information> and </information>. You can "
    "search as many times as your want. If you find no further external knowledge needed, you can directly provide "
    "the answer inside <answer> and </answer>, without detailed illustrations. For example, <answer> Beijing "
    "</answer>. Question: " + QUESTION + "\n"
)
SIM_REPLY = ("Doc 1: Carmen is an opera by Georges Bizet.\n\nDoc 2: It premiered in Paris in 1875.\nDoc 3: x\n"
             "Doc 4: y\nDoc 5: z\nDoc 6: never shown")
RETRIEVED = [Document("w1", "Georges Bizet", "Georges Bizet was a French composer.\nHe wrote Carmen."),
             Document("w2", "Carmen", "Carmen is an opera in four acts.")]
TURNS = ["<think>Who?</think>\n<search> carmen opera composer </search>",
         "<think>Check.</think>\n<search> georges bizet </search>",
         "<think>Bizet.</think>\n<answer> Georges Bizet </answer>"]


def original_sim_page(reply: str, topk: int) -> str:
    """Fact (ZeroSearch search_simulate_sft): the simulator's reply as the policy is shown it."""
    return "\n".join(reply.replace("\n\n", "\n").split("\n")).split(f"Doc {topk + 1}")[0]


def original_retrieved_page(docs: list[Document]) -> str:
    """Fact (Search-R1 _passages2string): title = first line of ``contents``, text = the rest."""
    out = ""
    for i, d in enumerate(docs):
        lines = d.contents.split("\n")
        out += f"Doc {i + 1}(Title: {lines[0]}) {chr(10).join(lines[1:])}\n"
    return out


class Replies:
    """A simulator LLM that writes SIM_REPLY."""

    def generate(self, messages, sampling):
        return [Completion(SIM_REPLY) for _ in messages]

    def close(self):
        pass


class TwoEngines:
    """First search: the simulated engine's page; second: retrieved documents (the original's two renderings)."""

    name = "two"

    def __init__(self) -> None:
        self.calls, self.simulator = 0, SimulatedBackend(Replies(), topk=5)

    def search(self, requests):
        self.calls += 1
        if self.calls == 1:
            return self.simulator.search(requests)
        return [list(RETRIEVED) for _ in requests]

    def metrics(self):
        return {}

    def close(self):
        pass


class Turns:
    def __init__(self, tokenizer, turns):
        self.tok, self.turns = tokenizer, list(turns)

    def generate(self, prompts, max_new_tokens, sampling):
        ids = self.tok(self.turns.pop(0), add_special_tokens=False)["input_ids"]
        return [Generated(ids, [-0.1] * len(ids), "stop") for _ in prompts]


@pytest.fixture
def tok():
    t = byte_tokenizer()
    t.chat_template = QWEN_LIKE
    return t


@pytest.fixture
def row_file(tmp_path):
    row = {"data_source": "nq", "prompt": [{"role": "user", "content": PROMPT_TEXT}], "ability": "fact-reasoning",
           "reward_model": {"style": "rule", "ground_truth": {"target": ["Georges Bizet"]}},
           "extra_info": {"split": "train", "index": 7}, "question": QUESTION, "golden_answers": ["Georges Bizet"]}
    path = tmp_path / "train.parquet"
    pq.write_table(pa.Table.from_pylist([row]), path)
    return path, row


def original_ids(tok, row, max_obs: int = 2048) -> tuple[list[int], list[int]]:
    """The original's ids and loss mask for the scripted episode."""
    enc = lambda text: tok(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    prompt = enc(tok.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=False))
    obs = [enc(f"\n\n<information>{p.strip()}</information>\n\n")[:max_obs]
           for p in (original_sim_page(SIM_REPLY, 5), original_retrieved_page(RETRIEVED))]
    pieces = [(prompt, 0), (enc(TURNS[0]), 1), (obs[0], 0), (enc(TURNS[1]), 1), (obs[1], 0), (enc(TURNS[2]), 1)]
    return [t for p, _ in pieces for t in p], [m for p, m in pieces for _ in p]


FAITHFUL = RolloutConfig(max_turns=2, final_answer_turn=True, observation_format="zerosearch", max_obs_tokens=2048,
                         max_response_tokens=8192, max_prompt_tokens=4096)


@pytest.mark.parametrize("template", ["data", "search_r1"])
def test_a_two_search_episode_has_the_original_s_token_ids(tok, row_file, template):
    path, row = row_file
    (example,) = load_examples(path)
    rollout = Rollout(tok, TwoEngines(), FAITHFUL, prompt_style="auto", prompt_template=template)
    (traj,) = rollout.run(Turns(tok, TURNS), [example], 1, 0, 0.0, Sampling()).trajectories
    ids, mask = original_ids(tok, row)
    assert traj.input_ids == ids  # prompt, response, information block, next turn: every token
    assert traj.loss_mask == mask
    assert "You are Qwen" in tok.decode(ids[: traj.prompt_length])  # the template's default system prompt
    assert traj.metrics["searches"] == 2 and traj.metrics["turns"] == 3


def test_the_search_r1_instruction_is_the_data_s():
    assert SEARCH_R1_INSTRUCTION.format(question=QUESTION) == PROMPT_TEXT


def test_without_a_chat_template_the_prompt_is_the_message_text_without_special_tokens(row_file):
    """The original (no chat template): ``chat[0]['content']``, tokenized without a BOS."""
    path, _ = row_file
    tok = byte_tokenizer()
    (example,) = load_examples(path)
    rollout = Rollout(tok, TwoEngines(), FAITHFUL, prompt_style="auto", prompt_template="data")
    assert rollout.prompt_ids(example) == tok(PROMPT_TEXT, add_special_tokens=False)["input_ids"]
    assert rollout.prompt_ids(example)[0] != tok.bos_token_id


def test_an_observation_past_its_budget_is_cut_as_the_original_cuts_it(tok, row_file):
    path, row = row_file
    (example,) = load_examples(path)
    cfg = RolloutConfig(max_turns=2, final_answer_turn=True, observation_format="zerosearch", max_obs_tokens=40,
                        max_response_tokens=8192, max_prompt_tokens=4096)
    (traj,) = Rollout(tok, TwoEngines(), cfg, prompt_template="data").run(
        Turns(tok, TURNS), [example], 1, 0, 0.0, Sampling()).trajectories
    assert traj.input_ids == original_ids(tok, row, max_obs=40)[0]  # no closing tag appended
    assert traj.metrics["truncated_observations"] == 2


@pytest.mark.parametrize(("final_answer_turn", "generations", "searches", "skipped"), [
    (False, 2, 1, 1),  # ours: max_turns counts every turn; the last one's search is not run
    (True, 3, 2, 1),  # the original's: max_turns turns may search, then one more turn
])
def test_max_turns_meaning(tok, row_file, final_answer_turn, generations, searches, skipped):
    path, _ = row_file
    (example,) = load_examples(path)
    cfg = RolloutConfig(max_turns=2, final_answer_turn=final_answer_turn, max_response_tokens=8192)
    searching = Turns(tok, [TURNS[0]] * 3)
    (traj,) = Rollout(tok, TwoEngines(), cfg).run(searching, [example], 1, 0, 0.0, Sampling()).trajectories
    assert sum(s.kind is SegmentKind.POLICY for s in traj.segments) == generations
    assert (traj.metrics["searches"], traj.metrics["skipped_searches"]) == (searches, skipped)
