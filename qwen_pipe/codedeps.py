"""Which source files a piece of the pipeline runs: static import closures, for DVC deps and cache keys.

A file is in a closure when some `import` statement on the way names it, at module level or inside a
function (a lazy import may run; we cannot tell which do), together with the `__init__.py` of every
package on its path and the package data files (`*.jsonl`, `*.jinja`, ...) whose names the code spells
out. Tasks are loaded by name at run time (`get_task`), which no import statement shows: a dataset's
task module is added explicitly, and a task module imports no other task module, so each dataset's task
code is exactly its own module plus shared layers. Engines are found at run time too (the engine registry
imports every module of its package, `DISCOVERS`): that module counts as importing all of them.

The `code` stage writes each stage's closure, file by file with its hash, to a manifest in data/code/, and
each stage depends on its manifest (`qwen-pipe dvc-deps --check` proves dvc.yaml says so); the score
cache keys every score by `task_code_sha256`, the hash of the same files.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import inspect
from collections.abc import Callable, Iterable
from pathlib import Path

PACKAGE = "qwen_pipe"
PACKAGE_DIR = Path(__file__).resolve().parent
ROOT = PACKAGE_DIR.parent
TASKS_PACKAGE = f"{PACKAGE}.tasks"
# Modules that import every module of a package at run time (pkgutil), which no import statement shows.
DISCOVERS = {f"{PACKAGE}.engines.registry": f"{PACKAGE}.engines"}


def relative(path: Path) -> str:
    return path.resolve().relative_to(ROOT).as_posix()


def module_path(name: str) -> Path | None:
    """qwen_pipe.a.b -> qwen_pipe/a/b.py or qwen_pipe/a/b/__init__.py (None: not a module of the package)."""
    if name != PACKAGE and not name.startswith(PACKAGE + "."):
        return None
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def module_name(path: Path) -> str:
    parts = list(path.resolve().relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def _data_files() -> dict[str, tuple[Path, ...]]:
    """Package files other than Python source, by file name (what code names to read them)."""
    found: dict[str, list[Path]] = {}
    for path in PACKAGE_DIR.rglob("*"):
        if path.is_file() and path.suffix not in {".py", ".pyc"} and "__pycache__" not in path.parts:
            found.setdefault(path.name, []).append(path)
    return {name: tuple(paths) for name, paths in found.items()}


@functools.cache
def _parse(path: Path) -> tuple[frozenset[str], frozenset[Path]]:
    """The package modules a file imports (anywhere in it) and the package data files it names."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    here = module_name(path) if path.is_relative_to(PACKAGE_DIR) else ""
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    modules: set[str] = set()
    data: set[Path] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            modules.add(base)
            modules.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import submodule`
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            data.update(_data_files().get(node.value.rpartition("/")[2], ()))
    if here in DISCOVERS:
        found = ROOT.joinpath(*DISCOVERS[here].split(".")).glob("*.py")
        modules.update(f"{DISCOVERS[here]}.{p.stem}" for p in found if p.stem != "__init__")
    return frozenset(m for m in modules if module_path(m) is not None), frozenset(data)


def _with_packages(name: str) -> list[str]:
    """A module and every package above it: importing it runs all their __init__.py files."""
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def closure(entries: Iterable[Path], enter: Callable[[str], bool] = lambda name: True) -> set[Path]:
    """Every file that running `entries` may import or read; modules for which `enter` is false are
    left out together with everything only they import."""
    seen: set[Path] = set()
    todo = [Path(e).resolve() for e in entries]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        if path.suffix != ".py":
            continue
        modules, data = _parse(path)
        todo.extend(data)
        for name in modules:
            for step in _with_packages(name):
                target = module_path(step)
                if target is not None and enter(step):
                    todo.append(target)
    return seen


def task_module(dataset: str) -> Path:
    """tasks/<dataset>.py, or the file of a task registered from elsewhere (a test's toy dataset)."""
    from qwen_pipe.tasks import TASKS

    if dataset in TASKS:
        return PACKAGE_DIR / "tasks" / f"{dataset}.py"
    from qwen_pipe.tasks.common.registry import task_class

    return Path(inspect.getfile(task_class(dataset))).resolve()


def task_modules() -> dict[str, Path]:
    """dataset -> the module that defines it."""
    from qwen_pipe.tasks import TASKS

    return {name: task_module(name) for name in TASKS}


@functools.cache
def task_code(dataset: str) -> frozenset[Path]:
    """The files that decide how `dataset` is prompted and scored: its task module's closure."""
    return frozenset(closure([task_module(dataset)]))


def files_sha256(paths: Iterable[Path]) -> str:
    """A hash of files by relative path and content."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(relative(path).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def task_code_sha256(dataset: str) -> str:
    """A hash of the task's code (every file of its closure): the scorer's identity."""
    return files_sha256(task_code(dataset))


def generation_code_sha256() -> str:
    """A hash of the code that generates (qwen_pipe/generate.py's closure without task modules, which
    reach generation only through the requests that fetch fingerprints): what the generate stage's DVC
    code deps are, so a cell kept as up to date was made by the same code."""
    return files_sha256(
        closure([PACKAGE_DIR / "generate.py"], enter=lambda name: not name.startswith(TASKS_PACKAGE))
    )


# --- dvc.yaml ------------------------------------------------------------------------------------------
DVC_FILE = ROOT / "dvc.yaml"
CODE_PREFIXES = ("stages/", f"{PACKAGE}/")
# Stages that see task code only through the requests the fetch stage fingerprints
# (tasks/common/requests.py): their deps name the datasets' folder (records + metadata) instead of the task modules.
# The plan renders and counts the same requests (prompts, budgets, turns, log-likelihood pairs).
VIA_REQUESTS = {"generate": "data/datasets", "plan": "data/datasets"}


def _stage_body(definition: dict) -> tuple[dict, str | None]:
    """The stage's own fields and how its cells name their dataset (None: no dataset axis)."""
    if "foreach" in definition:
        body = definition["do"]
        return body, "${item}" if "run.datasets" in str(definition["foreach"]) else None
    if "matrix" in definition:
        return definition, "${item.dataset}" if "dataset" in definition["matrix"] else None
    return definition, None


def _script(body: dict) -> Path:
    words = str(body["cmd"]).split()
    return ROOT / next(w for w in words if w.startswith("stages/") and w.endswith(".py"))


def _leaf_check() -> None:
    """Each task module imports no other task module, so a dataset's code is its module + shared layers."""
    from qwen_pipe.errors import QwenPipeError

    modules = set(task_modules().values())
    for dataset, module in task_modules().items():
        others = (task_code(dataset) & modules) - {module}
        if others:
            raise QwenPipeError(
                f"{relative(module)} imports {', '.join(sorted(relative(p) for p in others))}: a task module may "
                "import shared layers only (one module per dataset, so its DVC cells depend on it alone)",
                "move the shared code into a module that defines no dataset (in tasks/common/)",
            )


def _package_files(folder: Path) -> set[Path]:
    return {
        f for f in folder.rglob("*") if f.is_file() and "__pycache__" not in f.parts and f.suffix != ".pyc"
    }


def _compress(paths: set[Path]) -> list[str]:
    """Relative paths, a whole folder named once when every file in it is included (DVC hashes a folder
    dep over all its files, so the two are the same dependency)."""
    folders = {f for p in paths for f in p.parents if f.is_relative_to(PACKAGE_DIR)}
    chosen = set(paths)
    for folder in sorted(folders, key=lambda f: -len(f.parts)):  # deepest first
        if _package_files(folder) <= paths:
            chosen = {p for p in chosen if not p.is_relative_to(folder)} | {folder}
    return sorted(relative(p) for p in chosen)


# Stages with a dataset axis (a cell per dataset of the run): one manifest per task, with only its module.
DATASET_STAGES = {"fetch", "score"}
STAGES_DIR = ROOT / "stages"


def _some_tasks() -> dict[str, tuple[str, ...]]:
    """Stages that load only some datasets' tasks by name: the judge loads the judged ones (tasks.JUDGED)."""
    from qwen_pipe.tasks import JUDGED

    return {"judge": JUDGED}


def _files(stage: str, dataset: str | None = None) -> set[Path]:
    """The files a stage's cell runs: the import closure of stages/<stage>.py (see the module docstring)."""
    script = STAGES_DIR / f"{stage}.py"
    if stage in VIA_REQUESTS:
        return closure([script], enter=lambda name: not name.startswith(TASKS_PACKAGE))
    files = closure([script])
    if PACKAGE_DIR / "tasks" / "common" / "registry.py" not in files:  # loads no task by name
        return files
    modules = set(task_modules().values())
    shared = set().union(*(task_code(d) for d in task_modules())) - modules
    some = _some_tasks().get(stage)
    if some is not None:
        return (files - modules) | set().union(*(task_code(d) for d in some))
    if stage not in DATASET_STAGES:  # may load any task
        return files | shared | modules
    return ((files | shared) - modules) | ({task_module(dataset)} if dataset else set())


def expected_code_deps(stage: str) -> list[str]:
    """What a stage's code manifest covers, folders named once, `qwen_pipe/tasks/${item}.py` for the
    dataset's own module: for people and tests to read."""
    files = _compress(_files(stage))
    return [*files, f"{PACKAGE}/tasks/${{item}}.py"] if stage in DATASET_STAGES else files


# Every stage depends on one manifest of its code (data/code/<stage>[@<dataset>].json: each file of its
# closure and its hash), written by the `code` stage, instead of naming each file: DVC checks a file
# dependency in every stage on every `dvc repro` (about 30 per stage here), and a folder of manifests
# is checked once. A manifest changes exactly when a file of its closure does, so the same stages rerun.
# The code stage reads only code (DVC refuses dvc.yaml as a dependency): a manifest per script in
# stages/, per task for DATASET_STAGES; check_dvc_deps proves dvc.yaml agrees.
MANIFEST_DIR = "data/code"
CODE_STAGE = "code"
CODE_STAGE_DEPS = ["qwen_pipe", "stages"]


def manifest_dep(stage: str, item: str | None) -> str:
    return f"{MANIFEST_DIR}/{stage}{'@' + item if item else ''}.json"


def manifests() -> dict[str, dict]:
    """file name -> manifest, for every stage script and, for DATASET_STAGES, every task."""
    _leaf_check()
    found = {}
    for script in sorted(STAGES_DIR.glob("*.py")):
        stage = script.stem
        if stage == CODE_STAGE:
            continue
        for dataset in sorted(task_modules()) if stage in DATASET_STAGES else [None]:
            files = sorted(_files(stage, dataset))
            found[manifest_dep(stage, dataset).rsplit("/", 1)[1]] = {
                "stage": stage,
                "dataset": dataset,
                "files": {relative(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files},
            }
    return found


def write_manifests(folder: Path = ROOT / MANIFEST_DIR) -> list[str]:
    """The code stage: every manifest written (others in the folder removed); the names that changed."""
    import json

    from qwen_pipe.io import atomic_write_text

    folder.mkdir(parents=True, exist_ok=True)
    wanted = manifests()
    changed = []
    for name, manifest in wanted.items():
        text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
        path = folder / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            atomic_write_text(path, text)
            changed.append(name)
    for path in folder.glob("*.json"):
        if path.name not in wanted:
            path.unlink()
            changed.append(path.name)
    return sorted(changed)


def _code_deps(body: dict) -> list[str]:
    return [str(d) for d in body.get("deps", []) if str(d).startswith(CODE_PREFIXES)]


def check_dvc_deps(dvc_file: Path = DVC_FILE) -> list[str]:
    """One line per stage whose deps do not go through its code manifest (empty: all do)."""
    import yaml

    _leaf_check()
    stages = yaml.safe_load(dvc_file.read_text(encoding="utf-8"))["stages"]
    problems = []
    if CODE_STAGE not in stages:
        problems.append(f"no `{CODE_STAGE}` stage: nothing writes the code manifests ({MANIFEST_DIR}/)")
    for name, definition in stages.items():
        body, item = _stage_body(definition)
        deps = [str(d) for d in body.get("deps", [])]
        if name == CODE_STAGE:
            if deps != CODE_STAGE_DEPS:
                problems.append(f"{name}: deps must be {CODE_STAGE_DEPS} (every file a manifest can name)")
            continue
        manifest = manifest_dep(name, item if name not in VIA_REQUESTS else None)
        parts = [f"missing {manifest}"] if manifest not in deps else []
        if _script(body) != STAGES_DIR / f"{name}.py":
            parts.append(
                f"runs {relative(_script(body))}: a stage runs stages/{name}.py (its manifest's root)"
            )
        if (item is not None and name not in VIA_REQUESTS) != (name in DATASET_STAGES):
            parts.append(
                f"its dataset axis disagrees with codedeps.DATASET_STAGES ({sorted(DATASET_STAGES)})"
            )
        if _code_deps(body):
            parts.append(f"names code files ({', '.join(_code_deps(body))}): its manifest covers them")
        stale = [d for d in deps if d.startswith(MANIFEST_DIR + "/") and d != manifest]
        if stale:
            parts.append(f"another stage's manifest {', '.join(stale)}")
        if name in VIA_REQUESTS and VIA_REQUESTS[name] not in deps:
            parts.append(f"missing {VIA_REQUESTS[name]} (the requests its task code makes)")
        if parts:
            problems.append(f"{name}: {'; '.join(parts)}")
    return problems


def write_dvc_deps(dvc_file: Path = DVC_FILE) -> list[str]:
    """Make every stage depend on its code manifest (other deps kept); the stages changed."""
    from ruamel.yaml import YAML

    _leaf_check()
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 120
    yaml.indent(mapping=2, sequence=4, offset=2)
    document = yaml.load(dvc_file.read_text(encoding="utf-8"))
    changed = []
    for name, definition in document["stages"].items():
        if name == CODE_STAGE:
            continue
        body, item = _stage_body(definition)
        deps = body.get("deps", [])
        manifest = manifest_dep(name, item if name not in VIA_REQUESTS else None)
        others = [
            d
            for d in deps
            if not str(d).startswith(CODE_PREFIXES) and not str(d).startswith(MANIFEST_DIR + "/")
        ]
        if name in VIA_REQUESTS and VIA_REQUESTS[name] not in others:
            others.insert(0, VIA_REQUESTS[name])
        if [str(d) for d in deps] != [manifest, *map(str, others)]:
            deps[:] = [manifest, *others]
            changed.append(name)
    with dvc_file.open("w", encoding="utf-8") as handle:
        yaml.dump(document, handle)
    return changed


LOCK_FILE = ROOT / "dvc.lock"


def stale_lock_entries(lock_file: Path = LOCK_FILE) -> list[str]:
    """Stages recorded in dvc.lock that dvc.yaml, with the current params, no longer defines: DVC keeps them
    (a renamed matrix, a dropped model), and every `dvc repro` parses them again."""
    import subprocess
    import sys

    import yaml

    if not lock_file.is_file():
        return []
    from qwen_pipe.errors import QwenPipeError

    done = subprocess.run(
        [sys.executable, "-m", "dvc", "stage", "list", "--name-only"],
        cwd=lock_file.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        said = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise QwenPipeError(
            f"cannot list the stages of {lock_file.parent / 'dvc.yaml'}: {said}",
            "fix dvc.yaml and params.yaml (`dvc stage list` must work) before pruning dvc.lock",
        )
    listed = done.stdout.split()
    locked = (yaml.safe_load(lock_file.read_text(encoding="utf-8")) or {}).get("stages", {})
    return sorted(set(locked) - set(listed))


def prune_lock(lock_file: Path = LOCK_FILE) -> list[str]:
    """Drop the stale entries of dvc.lock (stale_lock_entries); the stages dropped."""
    from ruamel.yaml import YAML

    stale = stale_lock_entries(lock_file)
    if stale:
        yaml = YAML()
        yaml.width = 4096
        document = yaml.load(lock_file.read_text(encoding="utf-8"))
        for name in stale:
            del document["stages"][name]
        with lock_file.open("w", encoding="utf-8") as handle:
            yaml.dump(document, handle)
    return stale
