"""Bridges to other training stacks (optional extras). Each one imports its stack lazily."""
