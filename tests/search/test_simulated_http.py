"""The simulated engine against a real loopback server playing an OpenAI-compatible LLM."""

from __future__ import annotations

import pytest

from fakes.openai_server import FakeOpenAIServer, unused_base_url
from fakes.zerosearch_original import original_sft_prompt
from zerosearch_rl.config import load_config
from zerosearch_rl.generation.sampling import Sampling as PolicySampling
from zerosearch_rl.llm.base import Sampling
from zerosearch_rl.llm.openai_http import OpenAIChatClient
from zerosearch_rl.net import RetryPolicy
from zerosearch_rl.records import SearchRequest
from zerosearch_rl.search import build_backend
from zerosearch_rl.search.base import SearchError
from zerosearch_rl.search.simulated import SimulatedBackend, build_simulator_prompt

REQS = [
    SearchRequest("ada birthplace", "Where was Ada born?", ("Marlow",), noisy=False, sample_id="ada#0"),
    SearchRequest("tom employer", "Who employs Tom?", ("Copperline Foods", "Copperline"), noisy=True,
                  sample_id="tom#1"),
]


def docs_reply(message: str) -> str:
    query = message.split("Query: ")[-1].split("\n")[0]  # the last one: few-shot prompts show an example first
    return "\n".join(f"Doc {i}: page {i} about {query}" for i in range(1, 6))


def backend_for(server, mode="sft", retry=None, on_error="raise", prompt="zerosearch"):
    client = OpenAIChatClient([server.base_url], "sim", retry=retry or RetryPolicy(0, 0.0))
    return SimulatedBackend(client, mode=mode, topk=3, sampling=Sampling(temperature=0.8, max_new_tokens=600),
                            on_error=on_error, prompt=prompt)


@pytest.mark.parametrize(("mode", "prompt"), [("sft", "zerosearch"), ("prompt", "zerosearch"), ("prompt", "own")])
def test_exact_prompts_for_both_kinds_reach_the_server(mode, prompt):
    with FakeOpenAIServer(reply=docs_reply) as server:
        pages = backend_for(server, mode, prompt=prompt).search(REQS)
        bodies = sorted(server.chat_bodies(), key=lambda b: b["messages"][-1]["content"])
    expected = sorted(build_simulator_prompt(r, mode, prompt) for r in REQS)
    assert [b["messages"] for b in bodies] == [[{"role": "system", "content": ""}, {"role": "user", "content": e}]
                                               for e in expected]
    assert all(b["temperature"] == 0.8 and b["max_tokens"] == 600 and b["model"] == "sim" for b in bodies)
    if mode == "sft":
        useful, noisy = (build_simulator_prompt(r, mode) for r in REQS)
        assert "generate five useful documents" in useful and "whose answer is Marlow." in useful
        assert "generate five noisy documents" in noisy and "whose answer is Copperline Foods." in noisy
    assert [d.text for d in pages[0]] == [f"page {i} about ada birthplace" for i in (1, 2, 3)]
    assert [d.text for d in pages[1]] == [f"page {i} about tom employer" for i in (1, 2, 3)]


@pytest.mark.parametrize(("temperature", "generated"), [(0.8, 4), (0.0, 2)])
def test_identical_requests_reach_the_server_once_each_when_sampling(temperature, generated):
    with FakeOpenAIServer(reply=docs_reply) as server:
        client = OpenAIChatClient([server.base_url], "sim", retry=RetryPolicy(0, 0.0))
        backend = SimulatedBackend(client, topk=3, sampling=Sampling(temperature=temperature))
        pages = backend.search([REQS[0], REQS[1], REQS[0], REQS[0]])
        assert len(server.chat_bodies()) == generated
    assert pages[0] == pages[2] == pages[3] != pages[1]  # the fake server answers a prompt the same every time
    assert backend.metrics()["search/generated"] == generated


def test_a_failing_server_fails_after_bounded_retries_naming_the_url():
    with FakeOpenAIServer(reply=docs_reply, fail_if=lambda m: True) as server:
        backend = backend_for(server, retry=RetryPolicy(max_retries=2, backoff_s=0.05))
        with pytest.raises(SearchError, match=server.base_url):
            backend.search(REQS)
        assert len(server.chat_bodies()) == 2 * 3  # each request: 1 try + 2 retries, no more


def test_a_hung_server_times_out_and_soft_failure_serves_counted_documents():
    with FakeOpenAIServer(hang=True) as server:
        client = OpenAIChatClient([server.base_url], "sim", timeout_s=0.3, retry=RetryPolicy(1, 0.0))
        backend = SimulatedBackend(client, on_error="document")
        pages = backend.search(REQS)
    assert [[d.id for d in p] for p in pages] == [["search-failed"], ["search-failed"]]
    assert backend.metrics()["search/failures"] == 2


def test_fail_over_to_a_second_server():
    with FakeOpenAIServer(reply=docs_reply) as server:
        client = OpenAIChatClient([unused_base_url(), server.base_url], "sim", retry=RetryPolicy(2, 0.0))
        pages = SimulatedBackend(client).search(REQS)
    assert len(pages[0]) == 5


BODY_CASES = [  # (overrides, what the request body holds beyond the original's)
    ([], {}),  # the defaults: exactly the original's request (its `model=''` aside)
    (["simulator.top_p=0.9"], {"top_p": 0.9}),  # a nucleus is sent only when set
]


@pytest.mark.parametrize(("overrides", "extra"), BODY_CASES, ids=["defaults", "top_p"])
def test_the_configured_request_body_is_the_originals(overrides, extra):
    with FakeOpenAIServer(reply=docs_reply) as server:
        backend = build_backend(load_config(None, ["search.backend=simulate_sft", "simulator.client=openai",
                                                   f"simulator.base_urls=[{server.base_url}]", "simulator.model=sim",
                                                   *overrides]))
        backend.search(REQS[:1])
        (body,) = server.chat_bodies()
    assert body == {  # ask_llm: max_tokens=600, temperature (0.8 in the scripts), an empty system message
        "model": "sim", "max_tokens": 600, "temperature": 0.8,
        "messages": [{"role": "system", "content": ""},
                     {"role": "user", "content": original_sft_prompt("Where was Ada born?", "Marlow", "ada birthplace",
                                                                     useful=True)}],
        **extra,
    }


def test_built_from_config_with_model_from_the_server():
    with FakeOpenAIServer(reply=docs_reply, models=("Simulation_LLM_google_14B",)) as server:
        cfg = load_config(None, ["search.backend=simulate_sft", "simulator.client=openai",
                                 f"simulator.base_urls=[{server.base_url}]", "search.topk=2"])
        backend = build_backend(cfg)
        pages = backend.search(REQS[:1])
        assert server.chat_bodies()[0]["model"] == "Simulation_LLM_google_14B"
    assert len(pages[0]) == 2


def test_rollout_sends_each_searching_sample_its_own_question_and_answer():
    # Three questions, one of which is answered without searching: the simulator server must see exactly
    # the two searching samples, each with its own question and gold answer and its own noise draw.
    from test_rollout import ADA, IVY, TOK, TOM, ScriptedGenerator
    from zerosearch_rl.config import RolloutConfig
    from zerosearch_rl.curriculum import is_noisy
    from zerosearch_rl.rollout import Rollout

    with FakeOpenAIServer(reply=docs_reply) as server:
        backend = backend_for(server)
        rollout = Rollout(TOK, backend, RolloutConfig(max_turns=2), seed=5, prompt_style="base")
        rollout.run(ScriptedGenerator(), [ADA, IVY, TOM], 1, step=7, noise_p=0.5, sampling=PolicySampling())
        prompts = [b["messages"][-1]["content"] for b in server.chat_bodies()]
    expected = {build_simulator_prompt(SearchRequest(f"{ex.question.split()[2]} birthplace", ex.question,
                                                     ex.answers, is_noisy(5, 7, f"{ex.id}#0", 0, 0.5)), "sft")
                for ex in (ADA, TOM)}
    assert sorted(prompts) == sorted(expected)
    assert not any("Ivy" in p for p in prompts)
