"""The policy's token generators: token ids in, sampled ids and their behaviour log-probs out
(docs/design.md, §Token-in/token-out). ``base`` holds the protocol and what every generator shares,
``sampling`` the policy's sampling settings; ``transformers``, ``vllm`` and ``openai_completions`` the generators
(each imports its heavy package only when imported itself)."""
