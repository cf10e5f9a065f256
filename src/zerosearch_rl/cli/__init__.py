"""The ``zerosearch`` command: ``root`` builds the parser and runs a command; ``eval``, ``sim``, ``world`` and
``wiki`` add their command groups to it; ``args`` and ``errors`` are what they share (no module imports one
above it). ``main`` is the entry point of ``zerosearch`` and ``python -m zerosearch_rl``."""

from zerosearch_rl.cli.root import main

__all__ = ["main"]
