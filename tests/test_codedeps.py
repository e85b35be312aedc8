"""DVC deps follow the code: every stage declares exactly the files its code path imports.

The review found arc_easy cells that did not depend on the module holding their prompts and scorer, code
scores that did not depend on the shared code task, score cells that did not depend on the code that
scores, and generation that reran on every scorer edit. These tests hold the declared deps to the
import closures, and the closures to what the layers may see.
"""

from __future__ import annotations

import hashlib
import json
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
    return expected_code_deps(stage)


def test_every_stage_of_dvc_yaml_depends_on_its_code_manifest():
    assert check_dvc_deps() == []


def test_the_cli_check_passes():
    cli = Path(sys.executable).parent / "qwen-pipe"
    done = subprocess.run([str(cli), "dvc-deps", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "every stage depends on its code manifest" in done.stdout


SCORE_MANIFEST = "data/code/score@${item.dataset}.json"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda s: s["score"]["deps"].remove(SCORE_MANIFEST), f"score: missing {SCORE_MANIFEST}"),
        (
            lambda s: s["score"]["deps"].append("qwen_pipe/report.py"),
            "score: names code files (qwen_pipe/report.py)",
        ),
        (
            lambda s: s["score"]["deps"].__setitem__(0, "data/code/generate.json"),
            "another stage's manifest data/code/generate.json",
        ),
        (lambda s: s.pop("code"), "no `code` stage"),
        (lambda s: s["code"]["deps"].remove("stages"), "code: deps must be"),
        (lambda s: s["generate"]["deps"].remove("data/datasets"), "generate: missing data/datasets"),
        (
            lambda s: s["scale"].update(cmd="python stages/report.py"),
            "scale: runs stages/report.py: a stage runs stages/scale.py",
        ),
        (
            lambda s: s["score"]["matrix"].pop("dataset"),
            "score: missing data/code/score.json; its dataset axis disagrees",
        ),
    ],
)
def test_a_missing_or_extra_dep_is_reported(tmp_path, edit, expected):
    document = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    edit(document["stages"])
    broken = tmp_path / "dvc.yaml"
    broken.write_text(yaml.safe_dump(document))
    problems = check_dvc_deps(broken)
    assert len(problems) == 1 and expected in problems[0], problems


def test_write_dvc_deps_repairs_what_check_finds(tmp_path):
    document = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    document["stages"]["score"]["deps"] = ["qwen_pipe/score.py", "data/code/generate.json", "data/datasets"]
    document["stages"]["generate"]["deps"].remove("data/datasets")
    broken = tmp_path / "dvc.yaml"
    broken.write_text(yaml.safe_dump(document))
    assert set(codedeps.write_dvc_deps(broken)) == {"score", "generate"}
    assert check_dvc_deps(broken) == []
    assert yaml.safe_load(broken.read_text())["stages"]["score"]["deps"] == [SCORE_MANIFEST, "data/datasets"]


def test_each_manifest_names_its_stages_closure_with_each_files_hash(tmp_path):
    """A manifest changes exactly when a file of its stage's closure does: that is what reruns a stage."""
    written = tmp_path / "code"
    changed = codedeps.write_manifests(written)
    assert len(changed) == len(list(written.glob("*.json"))) == len(codedeps.manifests())
    assert codedeps.write_manifests(written) == []  # a second run changes nothing: no stage reruns
    score = json.loads((written / "score@gsm8k.json").read_text())["files"]
    assert "qwen_pipe/tasks/gsm8k.py" in score and "qwen_pipe/tasks/math500.py" not in score
    assert "qwen_pipe/scoring/extract.py" in score and "stages/score.py" in score
    assert (
        score["qwen_pipe/score.py"] == hashlib.sha256((ROOT / "qwen_pipe/score.py").read_bytes()).hexdigest()
    )
    generate = json.loads((written / "generate.json").read_text())["files"]
    assert not any(f.startswith("qwen_pipe/tasks/") and f.count("/") == 2 for f in generate)
    validate = json.loads((written / "validate.json").read_text())["files"]
    assert "qwen_pipe/validation.py" in validate and "qwen_pipe/tasks/gsm8k.py" not in validate  # sizes only
    # every dataset of every dataset-axis stage has one, so any run.datasets finds its manifest
    assert {f"fetch@{d}.json" for d in task_modules()} <= {p.name for p in written.glob("fetch@*.json")}
    (written / "score@gone.json").write_text("{}")  # a dataset that no longer exists
    assert (
        codedeps.write_manifests(written) == ["score@gone.json"]
        and not (written / "score@gone.json").exists()
    )


def test_an_edit_changes_exactly_the_manifests_whose_closure_holds_the_file(monkeypatch):
    """Each task module reaches exactly its own dataset's fetch and score manifests; a scorer-only layer
    reaches no generation."""
    before = codedeps.manifests()
    original = Path.read_bytes
    edited_file: list[Path] = []

    def edited(path: Path) -> bytes:
        data = original(path)
        return data + b"\n# edit\n" if edited_file and path == edited_file[0] else data

    monkeypatch.setattr(Path, "read_bytes", edited)

    def changed_by(path: Path) -> set[str]:
        edited_file[:] = [path]
        after = codedeps.manifests()
        return {name for name in before if before[name] != after[name]}

    from qwen_pipe.tasks import JUDGED

    for dataset, module in task_modules().items():
        # the judged datasets' task modules also hold their judge prompts' choice: the judge stage's code
        judge = {"judge.json"} if dataset in JUDGED else set()
        assert changed_by(module) == {f"fetch@{dataset}.json", f"score@{dataset}.json", *judge}, dataset
    extract = changed_by(ROOT / "qwen_pipe/scoring/extract.py")
    assert "score@gsm8k.json" in extract and "generate.json" not in extract


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
    for needed in ("qwen_pipe/score.py", "qwen_pipe/scoring", "qwen_pipe/tasks/${item}.py"):
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


def test_the_committed_lock_records_only_stages_that_exist():
    """DVC keeps the entries of stages that are gone (a renamed matrix): every no-op repro parses them."""
    assert codedeps.stale_lock_entries() == []


def test_prune_lock_drops_only_the_stages_that_are_gone(tmp_path):
    for name in ("dvc.yaml", "params.yaml", "dvc.lock"):
        (tmp_path / name).write_bytes((ROOT / name).read_bytes())
    subprocess.run(
        [sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=tmp_path, check=True, capture_output=True
    )
    lock = tmp_path / "dvc.lock"
    document = yaml.safe_load(lock.read_text())
    kept = set(document["stages"])
    document["stages"]["generate@tiny_small-balanced-gsm8k"] = {"cmd": "python stages/generate.py"}
    lock.write_text(yaml.safe_dump(document))
    assert codedeps.prune_lock(lock) == ["generate@tiny_small-balanced-gsm8k"]
    assert set(yaml.safe_load(lock.read_text())["stages"]) == kept
    assert codedeps.prune_lock(lock) == []


def test_prune_lock_on_a_broken_dvc_yaml_is_one_line_and_keeps_the_lock(tmp_path):
    for name in ("params.yaml", "dvc.lock"):
        (tmp_path / name).write_bytes((ROOT / name).read_bytes())
    (tmp_path / "dvc.yaml").write_text("stages:\n  broken: [\n")
    subprocess.run(
        [sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=tmp_path, check=True, capture_output=True
    )
    before = (tmp_path / "dvc.lock").read_bytes()
    with pytest.raises(QwenPipeError, match="cannot list the stages of"):
        codedeps.prune_lock(tmp_path / "dvc.lock")
    assert (tmp_path / "dvc.lock").read_bytes() == before
