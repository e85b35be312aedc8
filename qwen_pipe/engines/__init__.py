"""Engines: vllm, transformers, openai (any OpenAI-compatible server) and oracle.

The interface and its request/response types are in `base.py` (what tasks see); `registry.py` loads an
engine by name and says what determines its outputs (the response cache's key).
"""
