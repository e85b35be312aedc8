"""Engines: vllm, transformers, openai (any OpenAI-compatible server) and oracle.

The interface and its request/response types are in `base.py` (what tasks see). Each other module here
declares its engine once (`@register_engine`); `registry.py` finds them all, loads an engine by name and
says what determines its outputs (the response cache's key).
"""
