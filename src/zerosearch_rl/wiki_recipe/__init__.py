"""The real-LM recipe: SmolLM2-135M-Instruct learns to search the offline Wikipedia leads (``make demo-real``)."""
