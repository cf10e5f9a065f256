"""Measurements that decide whether the demo can work: engine hit rates, base-policy EM, simulator knowledge.

- ``bm25_hits``: for every hop query of the questions, is the document of the right entity among the
  engine's top-k (and first)?
- ``policy_em``: the policy's greedy episodes (``Rollout`` + ``HFGenerator`` + any engine), exact match
  by source, optionally *forced to search first* (its first turn starts with ``FORCED_SEARCH_PREFIX``).
- ``simulator_containment``: how often the simulator's useful pages (the ``simulate_sft`` prompt)
  contain the answer of the hop (the bridge for a two-hop question's first hop, the gold answer for
  the last hop), in a document's title or text (``reward.answer_in_documents``, the one rule; it read
  the text alone before, which changes nothing on the world's own documents, whose text always names
  their title, and counts a simulated document titled with the answer as naming it, as every other
  containment figure does).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from zerosearch_rl.config import RolloutConfig
from zerosearch_rl.generation.base import ForcedFirstTurn, TokenGenerator
from zerosearch_rl.generation.sampling import Sampling
from zerosearch_rl.llm.base import ChatLLM
from zerosearch_rl.llm.base import Sampling as ChatSampling
from zerosearch_rl.records import QAExample, SearchRequest
from zerosearch_rl.reward import answer_in_documents, exact_match, extract_answer
from zerosearch_rl.search.base import SearchBackend

#: Episode limits for the world's tiny policies (prompt ~110 tokens, three documents ~90 per search).
WORLD_ROLLOUT = RolloutConfig(n_samples=1, temperature=0.0, max_turns=4, max_new_tokens=32, max_obs_tokens=160,
                              max_response_tokens=512, max_prompt_tokens=256)


def _rate(hits: Sequence[bool]) -> float:
    return sum(hits) / len(hits) if hits else float("nan")


def _hops(ex: QAExample) -> list[tuple[str, str, str]]:
    """(kind, query, expected document id) per hop: single, hop1, hop2."""
    meta = ex.metadata
    kinds = ["single"] if ex.source == "single_hop" else ["hop1", "hop2"]
    return list(zip(kinds, meta["queries"], meta["documents"], strict=True))


def bm25_hits(engine: SearchBackend, examples: Sequence[QAExample]) -> dict[str, dict[str, float]]:
    """Per hop kind: share of queries whose right document is in the top-k, and is first."""
    hops = [h for ex in examples for h in _hops(ex)]
    pages = engine.search([SearchRequest(query=q) for _, q, _ in hops])
    in_top: dict[str, list[bool]] = defaultdict(list)
    first: dict[str, list[bool]] = defaultdict(list)
    for (kind, _, doc_id), page in zip(hops, pages, strict=True):
        ids = [d.id for d in page]
        in_top[kind].append(doc_id in ids)
        first[kind].append(bool(ids) and ids[0] == doc_id)
    return {k: {"top_k": _rate(in_top[k]), "first": _rate(first[k]), "queries": len(in_top[k])} for k in in_top}


@dataclass(frozen=True)
class PolicyScore:
    em: dict[str, float]  # by source, and "all"
    searches: dict[str, float]  # mean searches per episode, by source
    traces: list[dict[str, Any]]


def policy_em(model: Any, tokenizer: Any, engine: SearchBackend, examples: Sequence[QAExample],
              forced_prefix: str = "", batch_size: int = 64, cfg: RolloutConfig = WORLD_ROLLOUT) -> PolicyScore:
    """Greedy episodes of the policy against ``engine``; EM by source (and overall)."""
    from zerosearch_rl.generation.transformers import HFGenerator
    from zerosearch_rl.protocol import STOP_STRINGS
    from zerosearch_rl.rollout import Rollout

    rollout = Rollout(tokenizer, engine, cfg, seed=0, prompt_style="auto")
    greedy = Sampling(temperature=0.0)
    em: dict[str, list[bool]] = defaultdict(list)
    searches: dict[str, list[float]] = defaultdict(list)
    traces = []
    for start in range(0, len(examples), batch_size):
        chunk = list(examples[start : start + batch_size])
        generator: TokenGenerator = HFGenerator(model, tokenizer, STOP_STRINGS)
        if forced_prefix:
            generator = ForcedFirstTurn(generator, tokenizer(forced_prefix, add_special_tokens=False)["input_ids"])
        result = rollout.run(generator, chunk, n_samples=1, step=0, noise_p=0.0, sampling=greedy)
        for ex, traj in zip(chunk, result.trajectories, strict=True):
            answer = extract_answer(traj.policy_text)
            hit = answer is not None and exact_match(answer, ex.answers) == 1.0
            for key in (ex.source, "all"):
                em[key].append(hit)
                searches[key].append(traj.metrics["searches"])
            traces.append({"id": ex.id, "answers": list(ex.answers), "prediction": answer, "em": hit,
                           "response": traj.response_text})
    return PolicyScore({k: 100 * _rate(v) for k, v in em.items()},
                       {k: sum(v) / len(v) for k, v in searches.items()}, traces)


def simulator_containment(llm: ChatLLM, examples: Sequence[QAExample], prompt: str = "sft", topk: int = 3,
                          max_new_tokens: int = 120) -> dict[str, float]:
    """Per hop kind: share of useful pages written by ``llm`` that contain the hop's answer (%), greedy.

    ``prompt="sft"``: the ``simulate_sft`` prompt (question and gold answer included), as the engine
    asks it during RL. ``prompt="raw"``: the pretraining format ``Query: q`` alone, which measures
    what the simulator knows about the world by itself.
    """
    from zerosearch_rl.search.simulated import SimulatedBackend, parse_documents

    hops, requests = [], []
    for ex in examples:
        for kind, query, _ in _hops(ex):
            hops.append((kind, ex.metadata["bridge"] if kind == "hop1" else ex.answers[0]))
            requests.append(SearchRequest(query=query, question=ex.question, answers=ex.answers, noisy=False,
                                          sample_id=ex.id))
    sampling = ChatSampling(temperature=0.0, max_new_tokens=max_new_tokens)
    if prompt == "sft":
        pages = SimulatedBackend(llm, mode="sft", topk=topk, sampling=sampling).search(requests)
    elif prompt == "raw":
        completions = llm.generate([f"Query: {r.query}\n" for r in requests], sampling)
        pages = [parse_documents(c.text or "", topk)[0] for c in completions]
    else:
        raise ValueError(f"unknown prompt {prompt!r}; valid: sft, raw")
    hits: dict[str, list[bool]] = defaultdict(list)
    for (kind, target), page in zip(hops, pages, strict=True):
        hits[kind].append(answer_in_documents(page, target))
    return {k: 100 * _rate(v) for k, v in hits.items()}
