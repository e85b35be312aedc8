"""Reading a split from the Hugging Face hub with `datasets` (needs network)."""

from __future__ import annotations

from qwen_pipe.errors import QwenPipeError


def load_hub_split(hub_id: str, config: str | None, split: str) -> list[dict]:
    try:
        import datasets
    except ImportError:
        raise QwenPipeError(
            f"reading {hub_id} from the hub needs the `datasets` package",
            "pip install 'qwen-pipe[hub]' or use a mirror",
        ) from None
    try:
        data = datasets.load_dataset(hub_id, config, split=split)
    except Exception as error:  # noqa: BLE001 - offline, gated, renamed: all end the same way
        reason = str(error).splitlines()[0][:160] if str(error) else type(error).__name__
        raise QwenPipeError(
            f"cannot load {hub_id} ({config or 'default'}, {split}) from the hub: {reason}",
            "set fetch.data_dir / QWEN_PIPE_DATA_DIR (or --data-dir) to an offline mirror, or use source 'embedded'",
        ) from None
    return [dict(row) for row in data]
