"""qwen-pipe: a reproducible evaluation pipeline for open LLMs."""

__version__ = "0.1.0"
