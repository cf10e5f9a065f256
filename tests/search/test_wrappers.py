from __future__ import annotations

import pytest

from zerosearch_rl.config import load_config
from zerosearch_rl.net import EndpointError
from zerosearch_rl.records import Document, SearchRequest
from zerosearch_rl.search import build_backend
from zerosearch_rl.search.base import SearchError
from zerosearch_rl.search.fake import FakeBackend
from zerosearch_rl.search.wrappers import CachedBackend, FailSoftBackend, MixtureBackend


class Recorder:
    """A real-engine stand-in that records its batches; ``fail`` makes every call raise."""

    name, conditional = "recorder", False

    def __init__(self, tag="real", fail=None):
        self.tag, self.fail, self.batches, self.closed = tag, fail, [], False

    def search(self, requests):
        if self.fail:
            raise self.fail
        self.batches.append([r.query for r in requests])
        return [[Document(f"{self.tag}-{r.query}", self.tag, f"{self.tag} page for {r.query}")] for r in requests]

    def metrics(self):
        return {f"search/{self.tag}_calls": float(len(self.batches))}

    def close(self):
        self.closed = True


def r(query, noisy=False, question="Q?", sample_id="s", turn=0):
    return SearchRequest(query=query, question=question, answers=("A",), noisy=noisy, sample_id=sample_id, turn=turn)


def test_memory_cache_serves_repeats_and_counts_hit_rate():
    inner = Recorder()
    cache = CachedBackend(inner)
    first = cache.search([r("a"), r("b"), r("a")])
    second = cache.search([r("b"), r("c")])
    assert inner.batches == [["a", "b"], ["c"]]  # "a" twice in one batch: one miss; "b" later: a hit
    assert first[0] == first[2] and second[0] == first[1]
    m = cache.metrics()
    assert (m["search/cache_hits"], m["search/cache_misses"]) == (2, 3)
    assert m["search/cache_hit_rate"] == pytest.approx(2 / 5)
    assert m["search/real_calls"] == 2  # the inner engine's metrics pass through


def test_real_engine_cache_ignores_kind_but_simulated_cache_does_not():
    real = CachedBackend(Recorder())
    real.search([r("a", noisy=False)])
    real.search([r("a", noisy=True, question="other")])
    assert real.metrics()["search/cache_hits"] == 1
    sim = CachedBackend(FakeBackend(topk=2))
    useful = sim.search([r("a", noisy=False)])[0]
    noisy = sim.search([r("a", noisy=True)])[0]
    assert sim.metrics()["search/cache_hits"] == 0 and useful != noisy


def test_sqlite_cache_survives_a_restart(tmp_path):
    path = tmp_path / "cache" / "search.sqlite"
    first = CachedBackend(Recorder(), path)
    pages = first.search([r("a"), r("b")])
    first.close()
    inner = Recorder()
    second = CachedBackend(inner, path)
    assert second.search([r("b"), r("a")]) == [pages[1], pages[0]]
    assert inner.batches == []


def test_failures_are_not_cached():
    inner = Recorder()
    soft = FailSoftBackend(inner)
    cache = CachedBackend(soft)
    inner.fail = SearchError("down")
    assert cache.search([r("a")])[0][0].id == "search-failed"
    inner.fail = None
    assert cache.search([r("a")])[0][0].id == "real-a"  # the failure was not served from the cache
    assert cache.search([r("a")])[0][0].id == "real-a"
    assert inner.batches == [["a"]]  # ... but the success was


def test_fail_soft_turns_engine_errors_into_counted_documents():
    for error in (SearchError("remote: no answer from http://x:1"), EndpointError("http://x:1 refused")):
        soft = FailSoftBackend(Recorder(fail=error))
        pages = soft.search([r("a"), r("b")])
        assert [[d.id for d in p] for p in pages] == [["search-failed"], ["search-failed"]]
        assert "http://x:1" in pages[0][0].text
        assert soft.metrics()["search/failed_queries"] == 2
    with pytest.raises(ZeroDivisionError):  # a bug is not a search failure: it still surfaces
        FailSoftBackend(Recorder(fail=ZeroDivisionError())).search([r("a")])


def test_mixture_routes_a_share_reproducibly_and_keeps_order():
    real, sim = Recorder("real"), Recorder("sim")
    mix = MixtureBackend(real, sim, real_share=0.3, seed=1)
    requests = [r(f"q{i}", sample_id=f"s{i}") for i in range(400)]
    pages = mix.search(requests)
    assert [p[0].text.split(" page for ")[1] for p in pages] == [f"q{i}" for i in range(400)]
    share = len(real.batches[0]) / 400
    assert 0.22 < share < 0.38
    assert len(real.batches) == 1 and len(sim.batches) == 1  # one batched call per engine
    again = MixtureBackend(Recorder("real"), Recorder("sim"), real_share=0.3, seed=1).search(requests)
    assert again == pages
    assert MixtureBackend(Recorder(), Recorder("sim"), real_share=0.0).search(requests[:5])[0][0].title == "sim"
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        MixtureBackend(real, sim, real_share=1.5)


def test_fake_engine_states_the_answer_only_when_useful():
    fake = FakeBackend(topk=3)
    useful, noisy = fake.search([r("x", noisy=False), r("x", noisy=True)])
    assert len(useful) == len(noisy) == 3
    assert "A" in useful[0].text.split() or "is A." in useful[0].text
    assert not any("is A." in d.text for d in noisy)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["search.backend=bm25"], "search.backend=bm25 needs search.corpus"),
        (["search.backend=remote"], "search.backend=remote needs search.urls"),
    ],
)
def test_registry_explains_missing_settings(overrides, message):
    from zerosearch_rl.config import ConfigError

    with pytest.raises(ConfigError, match=message):
        build_backend(load_config(None, overrides))


def test_registry_rejects_unknown_names_with_the_valid_ones():
    from zerosearch_rl.config import ConfigError

    with pytest.raises(ConfigError, match="unknown search backend 'bing'; valid: simulate_prompt, simulate_sft, bm25"):
        build_backend(load_config(), "bing")


def test_registry_builds_exactly_the_backends_the_config_accepts():
    from zerosearch_rl import search
    from zerosearch_rl.config import BACKENDS, SIMULATED_ENGINES

    assert list(search._FACTORIES) == list(BACKENDS)  # one list of names: config's Backend type
    assert set(SIMULATED_ENGINES) < set(BACKENDS)


def test_registry_wraps_cache_and_fail_soft():
    cfg = load_config(None, ["search.backend=fake", "search.cache=memory", "search.on_error=document"])
    backend = build_backend(cfg)
    assert isinstance(backend, CachedBackend) and isinstance(backend.inner, FailSoftBackend)
    assert backend.search([r("a")])[0][0].id == "fake-answer"
