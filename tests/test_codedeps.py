"""DVC deps follow the code: every stage declares exactly the files its code path imports.

The review found arc_easy cells that did not depend on the module holding their prompts and scorer, code
scores that did not depend on the shared code task, score cells that did not depend on the code that
scores, and generation that reran on every scorer edit. These tests hold the declared deps to the
import closures, and the closures to what the layers may see.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from qwen_pipe import codedeps
from qwen_pipe.codedeps import (
    check_dvc_deps,
    closure,
    expected_code_deps,
    files_sha256,
    generation_code_sha256,
    relative,
    task_code,
    task_code_sha256,
    task_modules,
)
from qwen_pipe.errors import QwenPipeError

from support import ROOT

STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def deps_of(stage: str) -> list[str]:
    return expected_code_deps(stage, STAGES[stage])


def test_every_stage_of_dvc_yaml_declares_its_import_closure():
    assert check_dvc_deps() == []


def test_the_cli_check_passes():
    cli = Path(sys.executable).parent / "qwen-pipe"
    done = subprocess.run([str(cli), "dvc-deps", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "every stage's code deps are its import closure" in done.stdout


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda deps: deps.remove("qwen_pipe/score.py"), "score: missing qwen_pipe/score.py"),
        (lambda deps: deps.append("qwen_pipe/report.py"), "score: not imported qwen_pipe/report.py"),
        (
            lambda deps: deps.remove("qwen_pipe/tasks/${item.dataset}.py"),
            "missing qwen_pipe/tasks/${item.dataset}.py",
        ),
    ],
)
def test_a_missing_or_extra_dep_is_reported(tmp_path, edit, expected):
    document = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    edit(document["stages"]["score"]["deps"])
    broken = tmp_path / "dvc.yaml"
    broken.write_text(yaml.safe_dump(document))
    problems = check_dvc_deps(broken)
    assert len(problems) == 1 and expected in problems[0], problems


def test_generation_depends_on_the_requests_not_on_task_or_scorer_code():
    deps = deps_of("generate")
    assert not any(
        d.startswith(("qwen_pipe/tasks", "qwen_pipe/scoring", "qwen_pipe/sandbox")) for d in deps
    ), deps
    assert "qwen_pipe/score.py" not in deps
    assert "data/datasets" in STAGES["generate"]["deps"]  # records and the requests' fingerprint
    assert (
        "qwen_pipe/engines" in deps and "qwen_pipe/generate.py" in deps and "qwen_pipe/prompting.py" in deps
    )


def test_a_kept_generation_cell_was_made_by_the_code_the_stage_depends_on():
    """The generate stage keeps a cell whose inputs digest is unchanged; the digest's code part must cover
    every file DVC reruns the stage for, or a code fix would leave cells made by the old code."""
    files = set()
    for dep in deps_of("generate"):
        path = ROOT / dep
        files |= {f for f in path.rglob("*.py")} if path.is_dir() else {path}
    files.discard(ROOT / "stages/generate.py")
    hashed = closure(
        [ROOT / "qwen_pipe/generate.py"], enter=lambda name: not name.startswith("qwen_pipe.tasks")
    )
    assert {relative(f) for f in files} == {relative(f) for f in hashed}
    assert generation_code_sha256() == files_sha256(hashed)


def test_scoring_depends_on_the_scorer_and_not_on_engine_code():
    deps = deps_of("score")
    engines = {"vllm_engine.py", "transformers_engine.py", "openai_engine.py", "oracle.py", "registry.py"}
    assert not any(d.startswith("qwen_pipe/engines/") and d.rsplit("/", 1)[1] in engines for d in deps), deps
    assert "qwen_pipe/engines" not in deps and "qwen_pipe/generate.py" not in deps
    for needed in ("qwen_pipe/score.py", "qwen_pipe/scoring", "qwen_pipe/tasks/${item.dataset}.py"):
        assert needed in deps, needed
    assert any(d.startswith("qwen_pipe/sandbox") for d in deps)  # code tasks run in it


def test_each_dataset_is_its_own_module_and_imports_no_other_dataset():
    modules = task_modules()
    assert {path.stem for path in modules.values()} == set(modules)  # one module per dataset, named after it
    for dataset, module in modules.items():
        assert task_code(dataset) & set(modules.values()) == {module}, dataset


def test_arc_easy_and_the_code_datasets_depend_on_the_shared_code_of_their_family():
    """The review's two missing deps: ARC-Easy's prompt and scorer, and the code tasks' shared scorer."""
    arc = {relative(p) for p in task_code("arc_easy")}
    assert "qwen_pipe/tasks/common/ai2_arc.py" in arc and "qwen_pipe/tasks/arc_challenge.py" not in arc
    for dataset in ("humaneval_plus", "mbpp", "mbpp_plus"):
        code = {relative(p) for p in task_code(dataset)}
        assert "qwen_pipe/tasks/common/code.py" in code and "qwen_pipe/tasks/humaneval.py" not in code, (
            dataset
        )
    shared = set(deps_of("score"))
    assert {"qwen_pipe/tasks/common/ai2_arc.py", "qwen_pipe/tasks/common/code.py"} <= shared


def test_closures_see_lazy_imports_package_inits_and_data_files():
    files = {relative(p) for p in closure([ROOT / "qwen_pipe/generate.py"])}
    assert "qwen_pipe/engines/vllm_engine.py" in files  # imported inside a function of engines/registry.py
    assert "qwen_pipe/__init__.py" in files and "qwen_pipe/engines/__init__.py" in files
    gsm8k = {relative(p) for p in task_code("gsm8k")}
    assert "qwen_pipe/tasks/embedded/gsm8k_fewshot.jsonl" in gsm8k  # read by name at run time


def test_the_scorer_identity_covers_its_whole_closure(monkeypatch):
    """The score cache keys every score by this hash: a change in a file the scorer imports is a new key."""
    before = task_code_sha256("gsm8k")
    assert before == task_code_sha256("gsm8k") and before != task_code_sha256("math500")
    extract = ROOT / "qwen_pipe/scoring/extract.py"
    original = Path.read_bytes

    def edited(path: Path) -> bytes:
        data = original(path)
        return data + b"\n# edit\n" if path == extract else data

    monkeypatch.setattr(Path, "read_bytes", edited)
    assert task_code_sha256("gsm8k") != before


def test_a_task_module_importing_another_is_refused(monkeypatch):
    real = codedeps.task_code

    def leaky(dataset: str) -> frozenset[Path]:
        extra = {task_modules()["arc_challenge"]} if dataset == "arc_easy" else set()
        return real(dataset) | extra

    monkeypatch.setattr(codedeps, "task_code", leaky)
    with pytest.raises(
        QwenPipeError, match=re.escape("arc_easy.py imports qwen_pipe/tasks/arc_challenge.py")
    ):
        check_dvc_deps()


def test_no_code_dep_is_an_empty_file():
    """DVC warns once per cell for every empty dep ("... is empty"): a package __init__ says what it holds."""
    deps = {d for stage in STAGES for d in deps_of(stage) if d.endswith(".py") and "$" not in d}
    assert [d for d in sorted(deps) if not (ROOT / d).read_text().strip()] == []
