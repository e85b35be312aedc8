"""Profiles: named sets of params.yaml values (embedded, h100, ...) written into the file on request.

The shipped ones are in profiles.yaml beside this module; a `profiles:` block in params.yaml adds its own.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import TYPE_CHECKING

from qwen_pipe.errors import QwenPipeError, unknown_name

if TYPE_CHECKING:
    from qwen_pipe.config import Params

SHIPPED = Path(__file__).with_name("profiles.yaml")


def profiles(document: dict) -> dict[str, dict]:
    """The shipped profiles, with those of params.yaml (`document`) added or replacing them by name."""
    from ruamel.yaml import YAML

    shipped = YAML().load(SHIPPED.read_text(encoding="utf-8"))["profiles"]  # flow lists stay flow lists
    return {**shipped, **(document.get("profiles") or {})}


def _merge(target, values: dict, prefix: str, changed: list[str]) -> None:
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value, f"{prefix}{key}.", changed)
        elif target.get(key) != value:
            target[key] = copy.deepcopy(value)  # a copy, or ruamel writes the profile's node as an alias
            changed.append(f"{prefix}{key}")


def apply_profile(path: Path, name: str) -> list[str]:
    """Write profile `name` into params.yaml (comments and order kept); returns the keys that changed."""
    from ruamel.yaml import YAML

    from qwen_pipe.config import load_params

    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096  # keep flow lists on one line
    yaml.representer.add_representer(
        type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    if not path.is_file():
        raise QwenPipeError(f"{path} not found", "run from the repository root")
    document = yaml.load(path.read_text(encoding="utf-8"))
    known = profiles(document)
    if name not in known:
        raise unknown_name("profile", name, list(known))
    changed: list[str] = []
    _merge(document, dict(known[name]), "", changed)
    if document.get("profile") != name:
        document["profile"] = name
        changed.insert(0, "profile")
    backup = path.read_text(encoding="utf-8")
    with path.open("w", encoding="utf-8") as handle:
        yaml.dump(document, handle)
    try:
        load_params(path)
    except QwenPipeError as error:
        path.write_text(backup, encoding="utf-8")
        raise QwenPipeError(
            f"profile {name} makes params.yaml invalid: {error.line()}", "fix the profile"
        ) from None
    return changed


def profile_params(path: Path, name: str) -> Params:
    """params.yaml with profile `name` applied in memory, as `apply_profile` would write it; the file is
    read, never written."""
    import yaml

    from qwen_pipe.config import load_params, params_from

    load_params(path)  # the file's own problems first, as every command reports them
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    known = profiles(document)
    if name not in known:
        raise unknown_name("profile", name, list(known))
    _merge(document, json.loads(json.dumps(known[name])), "", [])  # plain values, not ruamel's nodes
    document["profile"] = name
    try:
        return params_from(document, f"profile {name}")
    except QwenPipeError as error:
        raise QwenPipeError(f"profile {name} makes params invalid: {error.problem}", error.fix) from None
