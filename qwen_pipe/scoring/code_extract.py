"""Pulling a program out of a model's answer: fenced blocks for chat models, raw text for completions."""

from __future__ import annotations

import re

from qwen_pipe.scoring.extract import strip_thinking

_FENCE = re.compile(r"```[ \t]*(?:python|py|Python|python3)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)


def extract_code(text: str) -> str:
    """The code of an answer: its longest fenced block if it has one, else the text itself."""
    text = strip_thinking(text)
    blocks = _FENCE.findall(text)
    if blocks:
        return max(blocks, key=len)
    return text


def defines(code: str, name: str) -> bool:
    return re.search(rf"^\s*def\s+{re.escape(name)}\s*\(", code, re.MULTILINE) is not None


def complete_function(prompt: str, answer: str, entry_point: str) -> str:
    """The solution program: the answer alone if it defines the function, else prompt + answer.

    The prompt's imports are kept in both cases, since chat models often drop them.
    """
    code = extract_code(answer)
    if defines(code, entry_point):
        imports = "\n".join(line for line in prompt.splitlines() if line.startswith(("import ", "from ")))
        return f"{imports}\n{code}" if imports else code
    return prompt + code
