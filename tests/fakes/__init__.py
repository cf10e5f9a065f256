"""Fakes shared by the tests: real loopback servers standing in for remote services, tiny models, and the
original ZeroSearch's prompts as facts (``zerosearch_original``)."""
