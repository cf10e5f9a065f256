"""One function builds the simulator's chat (``chat_messages``): the OpenAI client sends it, and the in-process
clients render what a server renders for it (``apply_chat_template`` on the messages), checked with a template
that, like Qwen2.5's, writes a default system prompt when the chat has no system message."""

from __future__ import annotations

import pytest

from fakes.openai_server import FakeOpenAIServer
from zerosearch_rl.config import load_config
from zerosearch_rl.llm import build_chat_llm
from zerosearch_rl.llm.base import Sampling, chat_messages, render_chat
from zerosearch_rl.llm.openai_http import OpenAIChatClient
from zerosearch_rl.llm.transformers_chat import TransformersChat
from zerosearch_rl.llm.vllm_chat import chat_prompt_ids
from zerosearch_rl.net import RetryPolicy
from zerosearch_rl.tiny_models import byte_tokenizer, tiny_llama

QWEN_LIKE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for m in messages %}{%- if m['role'] != 'system' %}"
    "{{- '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
PROMPT = 'Query: "Gauß" 出生地\nUseful Output:\n'
USER = f"<|im_start|>user\n{PROMPT}<|im_end|>\n<|im_start|>assistant\n"

CASES = [  # (system_message, messages, the text a server renders, written out by hand)
    ("", [{"role": "system", "content": ""}, {"role": "user", "content": PROMPT}],
     "<|im_start|>system\n<|im_end|>\n" + USER),  # the original's empty system message: an empty system turn
    (None, [{"role": "user", "content": PROMPT}],
     "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n" + USER),
    ("Be terse.", [{"role": "system", "content": "Be terse."}, {"role": "user", "content": PROMPT}],
     "<|im_start|>system\nBe terse.<|im_end|>\n" + USER),
]
RENDERED = {system: rendered for system, _, rendered in CASES}


@pytest.fixture(scope="module")
def tokenizer():
    tok = byte_tokenizer()  # one token per byte: any text round-trips
    tok.chat_template = QWEN_LIKE
    return tok


@pytest.mark.parametrize(("system", "messages", "rendered"), CASES, ids=["empty", "none", "custom"])
def test_every_client_renders_what_a_server_renders(tokenizer, system, messages, rendered):
    assert chat_messages(PROMPT, system) == messages
    assert tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == rendered  # a server
    assert render_chat(tokenizer, PROMPT, system) == rendered
    chat = TransformersChat(tiny_llama(len(tokenizer)), tokenizer, system_message=system)
    assert chat.render(PROMPT) == rendered
    ids = chat_prompt_ids(tokenizer, PROMPT, system)  # the vLLM client's prompt
    assert ids == tokenizer.encode(rendered, add_special_tokens=False) and tokenizer.decode(ids) == rendered


@pytest.mark.parametrize(("system", "messages", "rendered"), CASES, ids=["empty", "none", "custom"])
def test_the_http_client_sends_the_messages_the_in_process_clients_render(tokenizer, system, messages, rendered):
    with FakeOpenAIServer() as server, OpenAIChatClient([server.base_url], "sim", retry=RetryPolicy(0, 0.0),
                                                        system_message=system) as client:
        [done] = client.generate([PROMPT], Sampling(temperature=0.8))
        (body,) = server.chat_bodies()
    assert done.ok and body["messages"] == messages
    assert tokenizer.apply_chat_template(body["messages"], tokenize=False, add_generation_prompt=True) == rendered


def test_a_template_free_tokenizer_gets_the_message_itself():
    assert render_chat(byte_tokenizer(), PROMPT, "") == PROMPT


@pytest.mark.parametrize(("override", "system"), [([], ""), (["simulator.system_message=null"], None),
                                                  (["simulator.system_message=Be terse."], "Be terse.")])
def test_simulator_system_message_reaches_every_client(tmp_path, tokenizer, override, system):
    cfg = load_config(None, ["simulator.client=openai", "simulator.base_urls=[http://127.0.0.1:9/v1]", *override])
    assert cfg.simulator.system_message == system
    with OpenAIChatClient.from_config(cfg.simulator) as client:
        assert client.system_message == system
    tiny_llama(len(tokenizer)).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    chat = build_chat_llm(load_config(None, ["simulator.client=transformers", f"simulator.model={tmp_path}",
                                             *override]).simulator)
    assert chat.render(PROMPT) == RENDERED[system]
