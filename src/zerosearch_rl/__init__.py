"""zerosearch-rl: train LLMs to search with reinforcement learning against a simulated search engine.

The package root imports nothing heavy: ``import zerosearch_rl`` never loads torch.
"""

__version__ = "0.1.0"
