"""Model facts: the registry of Qwen models, their spec, tiny random-weight models, the Qwen tokenizer."""
