"""The package's layers, lowest first: no import runs from a lower layer to a higher one, and no stage
module imports another stage's module. docs/architecture.md draws the same map.

Every import statement counts, lazy ones inside functions too (qwen_pipe/codedeps.py reads them), since a
lazy import is still a dependency: it is what dvc.yaml's code deps are made of.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from qwen_pipe import codedeps

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("errors", "io", "console", "provenance", "cache", "isolation", "cells", "results")),
    ("models", ("models",)),
    # `tasks` here is only the package's __init__: the table of dataset names that config checks against
    ("config", ("config", "profiles", "protocols", "tasks.__init__")),
    ("engines, scoring, sandbox, sources, cluster", ("engines", "scoring", "sandbox", "sources", "cluster")),
    (
        "tasks, measurement, prompts, figures, published numbers",
        ("tasks", "measure", "prompting", "plots", "published"),
    ),
    ("code identity", ("codedeps",)),
    ("analysis rules", ("consolidate", "insights", "readiness")),
    (
        "stages",
        (
            "fetch",
            "validation",
            "coverage",
            "performance",
            "generate",
            "score",
            "judge",
            "scaling",
            "analysis",
            "report",
        ),
    ),
    ("commands", ("evaluate", "score_code", "taskdocs", "html_report", "diff", "plan", "fanout", "cli")),
]
STAGES = dict(LAYERS)["stages"]


def unit(module: str) -> str:
    """qwen_pipe.tasks.common.base -> tasks; qwen_pipe.tasks (the package __init__) -> tasks.__init__."""
    parts = module.split(".")[1:]
    if parts == ["tasks"]:
        return "tasks.__init__"
    return parts[0] if parts else "__init__"


def rank(module: str) -> int:
    name = unit(module)
    for index, (_, units) in enumerate(LAYERS):
        if name in units:
            return index
    if name == "__init__":
        return 0
    raise AssertionError(f"{module} is in no layer: add it to LAYERS here and to docs/architecture.md")


def imports() -> list[tuple[str, str]]:
    edges = []
    for path in sorted(codedeps.PACKAGE_DIR.rglob("*.py")):
        source = codedeps.module_name(path)
        targets, _ = codedeps._parse(path.resolve())
        edges.extend((source, target) for target in sorted(targets))
    return edges


def violations(edges: list[tuple[str, str]]) -> list[str]:
    found = []
    for source, target in edges:
        if rank(target) > rank(source):
            found.append(f"{source} ({LAYERS[rank(source)][0]}) imports {target} ({LAYERS[rank(target)][0]})")
        elif unit(source) in STAGES and unit(target) in STAGES and unit(source) != unit(target):
            found.append(f"stage module {source} imports another stage's module {target}")
    return found


def test_every_module_has_a_layer():
    for path in codedeps.PACKAGE_DIR.rglob("*.py"):
        rank(codedeps.module_name(path))


def test_no_import_runs_up_a_layer_or_across_stages():
    assert violations(imports()) == []


@pytest.mark.parametrize(
    ("edge", "expected"),
    [
        (("qwen_pipe.config", "qwen_pipe.engines.registry"), "qwen_pipe.config (config) imports"),
        (("qwen_pipe.sources.hub", "qwen_pipe.tasks.common.base"), "imports qwen_pipe.tasks.common.base"),
        (("qwen_pipe.performance", "qwen_pipe.coverage"), "another stage's module"),
        (("qwen_pipe.scoring.stats", "qwen_pipe.report"), "(stages)"),
    ],
)
def test_an_upward_or_sideways_import_is_caught(edge, expected):
    [problem] = violations([edge])
    assert expected in problem


def test_stage_scripts_import_only_their_own_stage_module():
    """stages/<name>.py is thin: it may use the shared layers, and exactly one stage module."""
    own = {
        "validate": "validation",
        "scale": "scaling",
        "perf_matrix": "performance",
        "cost_scaling": "performance",
        "analyze": "analysis",
        "readiness": "analysis",
    }
    for script in sorted(Path(codedeps.ROOT / "stages").glob("*.py")):
        targets, _ = codedeps._parse(script.resolve())
        stage_modules = {unit(t) for t in targets} & set(STAGES)
        assert stage_modules <= {own.get(script.stem, script.stem)}, (script.name, stage_modules)
