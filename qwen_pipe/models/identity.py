"""What a model *is*, for cache keys: a local folder's content hash, or a hub id at a resolved commit.

A model updated in place (same path, new weights) gets a new identity, so it never returns answers
cached for the old weights.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from qwen_pipe.models.spec import ModelSpec

log = logging.getLogger(__name__)
HASHED = ("*.json", "*.safetensors", "*.bin", "*.model", "*.tiktoken", "*.txt", "*.jinja", "*.py")
MEMO = Path(".cache/model-identity.json")  # folder hashes, keyed by the files' sizes and mtimes


def folder_hash(folder: Path, memo: Path = MEMO) -> str:
    files = sorted({p for pattern in HASHED for p in folder.glob(pattern) if p.is_file()})
    stamp = json.dumps([[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files])
    key = f"{folder.resolve()}|{hashlib.sha256(stamp.encode()).hexdigest()}"
    known = _read_memo(memo)
    if key in known:
        return known[key]
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    value = digest.hexdigest()
    known[key] = value
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        memo.write_text(json.dumps(known), encoding="utf-8")
    except OSError:  # a read-only checkout still works, it just hashes again next time
        pass
    return value


def _read_memo(memo: Path) -> dict:
    try:
        return json.loads(memo.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def hub_commit(hf_id: str, revision: str | None) -> str | None:
    """The commit a hub revision points at: asked online, else read from the local HF cache."""
    try:
        from huggingface_hub import HfApi, constants

        if not constants.HF_HUB_OFFLINE:
            return HfApi().model_info(hf_id, revision=revision).sha
    except Exception as error:  # noqa: BLE001 - offline or unreachable: fall back to the local cache
        log.info("cannot ask the hub for %s: %s", hf_id, error)
    try:
        from huggingface_hub import constants

        ref = (
            Path(constants.HF_HUB_CACHE)
            / f"models--{hf_id.replace('/', '--')}"
            / "refs"
            / (revision or "main")
        )
        return ref.read_text().strip() if ref.is_file() else None
    except Exception:  # noqa: BLE001
        return None


def model_identity(spec: ModelSpec, load_format: str = "auto") -> str:
    folder = Path(spec.hf_id).expanduser()
    if folder.is_dir():
        identity = f"local:{folder_hash(folder)}"
    else:
        commit = (
            spec.revision
            if spec.revision and len(spec.revision) == 40
            else hub_commit(spec.hf_id, spec.revision)
        )
        if commit is None:
            log.warning(
                "%s: revision not resolvable; cache entries are keyed by the revision name", spec.hf_id
            )
        identity = f"hub:{spec.hf_id}@{commit or spec.revision or 'main'}"
    return identity if load_format == "auto" else f"{identity}+{load_format}"
