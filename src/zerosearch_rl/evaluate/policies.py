"""The model under evaluation, per the config: in process (``model.policy``) or behind a server
(``eval.policy_urls``); either way a ``TokenGenerator`` and the tokenizer that renders its prompts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from zerosearch_rl.config import Config, ConfigError
from zerosearch_rl.generation.base import TokenGenerator


@dataclass
class EvalPolicy:
    generator: TokenGenerator
    tokenizer: Any
    label: str

    def close(self) -> None:
        close = getattr(self.generator, "close", None)
        if close is not None:
            close()


def _tokenizer(name: str, key: str) -> Any:
    from transformers import AutoTokenizer

    from zerosearch_rl.model_paths import resolve_model

    try:
        return AutoTokenizer.from_pretrained(resolve_model(name, key, weights=False))
    except OSError as exc:
        raise ConfigError(f"cannot load the tokenizer {name!r} (model.tokenizer or model.policy): it must be a "
                          f"local folder or a name already in the Hugging Face cache ({exc})") from None


def load_eval_policy(cfg: Config) -> EvalPolicy:
    """The policy of ``cfg``: a local model in eval mode with ``HFGenerator``, or a completions server."""
    e, m = cfg.eval, cfg.model
    if e.policy_urls:
        from zerosearch_rl.generation.openai_completions import CompletionsGenerator, OpenAICompletionsClient
        from zerosearch_rl.net import RetryPolicy

        if not (m.tokenizer or m.policy):
            raise ConfigError("eval.policy_urls needs model.tokenizer (or model.policy) to render the prompts")
        tokenizer = _tokenizer(m.tokenizer or m.policy, "model.tokenizer" if m.tokenizer else "model.policy")
        client = OpenAICompletionsClient(e.policy_urls, e.policy_model, api_key_env=e.policy_api_key_env,
                                         concurrency=e.policy_concurrency, timeout_s=e.policy_timeout_s,
                                         retry=RetryPolicy(max_retries=e.policy_max_retries))
        try:
            label = client.model_name()  # fails here, before any work, when no server answers
        except BaseException:
            client.close()
            raise
        return EvalPolicy(CompletionsGenerator(client, tokenizer), tokenizer, label)
    if not m.policy:
        raise ConfigError("no policy to evaluate: set model.policy (a local folder, tiny-random, "
                          "smollm2-135m-instruct) or eval.policy_urls")
    from zerosearch_rl.generation.transformers import HFGenerator
    from zerosearch_rl.policy import load_policy
    from zerosearch_rl.protocol import STOP_STRINGS

    try:
        model, tokenizer = load_policy(m, e.seed)
    except OSError as exc:  # a folder that is not there, a hub name not in the cache, a missing package
        raise ConfigError(f"cannot load model.policy={m.policy!r}: {exc}".replace("\n", " ")) from None
    return EvalPolicy(HFGenerator(model.eval(), tokenizer, STOP_STRINGS), tokenizer, m.policy)
