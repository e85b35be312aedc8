"""The GPU container, checked without Docker: hadolint on the Dockerfile and static checks of the Dockerfile,
`make docker-run` and .dockerignore (docs/docker.md). Nothing here builds or runs the image."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support import ROOT

DOCKERFILE = ROOT / "Dockerfile"
SECRET_NAME = re.compile(
    r"(^|_)(TOKEN|KEY|SECRET|PASSWORD|PASSWD|CREDENTIALS?)$|^HF_TOKEN$|^HUGGING_FACE_HUB_TOKEN$"
)


def instructions(text: str) -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined, comments dropped."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    result = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, args = line.strip().partition(" ")
            result.append((keyword.upper(), args.strip()))
    return result


def assigned_names(args: str) -> list[tuple[str, str | None]]:
    """The (name, value) pairs of an ENV or ARG instruction (value None where it has none)."""
    if "=" not in args:  # `ARG NAME` (no default) or the legacy `ENV NAME value`
        name, _, value = args.partition(" ")
        return [(name, value.strip() or None)]
    return re.findall(r'([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\'[^\']*\'|\S*)', args)


def recipe(target: str) -> str:
    """A Makefile target's recipe, continuation lines joined."""
    text = (ROOT / "Makefile").read_text()
    match = re.search(rf"^{re.escape(target)}:.*\n((?:\t.*\n|\n)+)", text, re.MULTILINE)
    assert match, f"no {target} target in the Makefile"
    return re.sub(r"\\\n\s*", " ", match.group(1))


def hadolint() -> str:
    """hadolint from the dev extra: beside this interpreter (.venv/bin), else on PATH."""
    here = Path(sys.executable).parent / "hadolint"
    found = str(here) if here.exists() else shutil.which("hadolint")
    if found is None:
        pytest.fail(
            "hadolint is missing: it comes with the dev extra (pip install -e '.[dev]', or make install)"
        )
    return found


def test_hadolint_passes():
    done = subprocess.run(
        [hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"hadolint Dockerfile:\n{done.stdout}{done.stderr}"


def test_every_hadolint_ignore_says_why():
    lines = DOCKERFILE.read_text().splitlines()
    ignores = [i for i, line in enumerate(lines) if re.match(r"\s*#\s*hadolint\s+ignore=", line)]
    for i in ignores:
        assert i > 0 and lines[i - 1].lstrip().startswith("#"), (
            f"line {i + 1}: an ignore without a reason above it"
        )
    assert not (ROOT / ".hadolint.yaml").exists() and not (ROOT / ".hadolint.yml").exists(), (
        "rules are ignored in the Dockerfile, next to their reason, not in a config file"
    )


def test_base_image_pinned_by_tag_and_digest():
    froms = [args for keyword, args in instructions(DOCKERFILE.read_text()) if keyword == "FROM"]
    assert len(froms) == 1, froms
    pinned = r"vllm/vllm-openai:v\d+\.\d+\.\d+(\.post\d+)?@sha256:[0-9a-f]{64}"
    assert re.fullmatch(pinned, froms[0]), f"FROM {froms[0]}: not a vllm-openai tag with its sha256 digest"
    assert "$" not in froms[0], "the FROM line names the image itself, not a build ARG"


def test_runs_as_non_root_user():
    steps = instructions(DOCKERFILE.read_text())
    keywords = [keyword for keyword, _ in steps]
    users = [(i, args) for i, (keyword, args) in enumerate(steps) if keyword == "USER"]
    assert users, "no USER instruction: the container would run as root"
    last_index, last_user = users[-1]
    assert last_user.split(":")[0] not in ("root", "0"), last_user
    for keyword in ("CMD", "ENTRYPOINT"):
        if keyword in keywords:
            assert last_index < keywords.index(keyword), f"USER comes after {keyword}"


def test_no_secret_baked_in():
    for keyword, args in instructions(DOCKERFILE.read_text()):
        if keyword in ("ENV", "ARG"):
            for name, value in assigned_names(args):
                assert not (SECRET_NAME.search(name.upper()) and value), f"{keyword} {name} has a value"
                assert name.upper() not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"), f"{keyword} {name}"
    assert not re.search(r"hf_[A-Za-z0-9]{20,}", DOCKERFILE.read_text()), (
        "a Hugging Face token in the Dockerfile"
    )


def test_docker_run_passes_gpus_ipc_token_and_mounts():
    run = recipe("docker-run")
    assert "--gpus all" in run, "docker-run without --gpus all"
    assert "--ipc=host" in run, "docker-run without --ipc=host (PyTorch shares memory between processes)"
    assert re.search(r"--user\s+\"?\$\$\(id -u\):\$\$\(id -g\)", run), "not run as the host user"
    assert re.search(r"-e HF_TOKEN(\s|$)", run), "HF_TOKEN is not passed through"
    assert not re.search(r"HF_TOKEN=", run), "HF_TOKEN is given a value on the command line"
    assert re.search(r"-v \"?\$\(CURDIR\):/workspace\"?", run), "the repo is not mounted at /workspace"
    assert re.search(r"-v \"?\$\(HF_CACHE\):/home/qwen/\.cache/huggingface\"?", run), (
        "the HF cache is not mounted"
    )
    assert "qwen-pipe profile h100 && dvc repro" in run
    home = re.search(r"^ENV\s.*HOME=(\S+)", DOCKERFILE.read_text(), re.MULTILINE)
    hf_home = re.search(r"HF_HOME=(\S+)", DOCKERFILE.read_text())
    assert home and home.group(1) == "/home/qwen", "the mount target assumes HOME=/home/qwen"
    assert hf_home and hf_home.group(1) == "/home/qwen/.cache/huggingface"
    assert "safe.directory /workspace" in DOCKERFILE.read_text(), (
        "git refuses the mounted repo as another user's"
    )


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule, simplified: the last pattern that matches the path or one of its parent folders wins
    (`**/name` matches that name at any depth)."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        body = pattern.removeprefix("!").strip("/")
        if body.startswith("**/"):
            hit = any(fnmatch.fnmatchcase(part, body[3:]) for part in parts)
        else:
            hit = any(fnmatch.fnmatchcase(prefix, body) for prefix in prefixes)
        if hit:
            excluded = not pattern.startswith("!")
    return excluded


def test_dockerignore_sends_only_the_package():
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    not_sent = [
        ".venv/bin/python",
        ".dvc/cache/files/md5/00/ab",
        "data/generations/x.json",
        ".git/HEAD",
        "dvc.yaml",
        "params.yaml",
        "stages/generate.py",
        "tests/test_cli.py",
        "qwen_pipe/__pycache__/cli.cpython-312.pyc",
    ]
    for path in not_sent:
        assert dockerignored(path, patterns), f"{path} would be sent to the build"
    for path in ("pyproject.toml", "README.md", "qwen_pipe/cli.py", "qwen_pipe/profiles.yaml"):
        assert not dockerignored(path, patterns), f"{path} is needed by the build but ignored"
