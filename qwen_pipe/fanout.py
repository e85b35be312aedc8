"""`qwen-pipe cluster run`: the run's engine and scoring work spread over a Ray cluster, then `dvc repro`.

DVC runs one stage at a time, so on its own it would use one unit of the cluster at a time. This command
first runs every model x preset's generation as its own Ray task, all at once (Ray starts as many as the
cluster has GPUs for), then every cell's scoring, then `dvc repro`: the generate stages find their files
made from the same inputs and keep them, the score stages find every score in the score cache, the judge
stage runs its one unit on the cluster, and DVC records it all as for a local run. A second `dvc repro`
does nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from qwen_pipe.cells import Cell
from qwen_pipe.cluster import connect, run_on_cluster
from qwen_pipe.config import Params
from qwen_pipe.console import PROGRESS_ENV
from qwen_pipe.errors import QwenPipeError
from qwen_pipe.generate import generate_line, generate_pipeline_cells
from qwen_pipe.score import score_line, score_pipeline_cell

# what the generate stages read, made first (dvc repro of these and whatever they depend on)
UPSTREAM_OF_GENERATE = ("build_models", "validate")


def cluster_run(params: Params, echo: Callable[[str], None], dvc: Path | None = None) -> int:
    """Upstream stages, generation and scoring on the cluster, then `dvc repro`; its exit code."""
    if not params.cluster.address:
        raise QwenPipeError(
            "cluster.address is not set", "set cluster.address in params.yaml (auto, or ray://host:10001)"
        )
    connect(params.cluster)  # a bad address fails here, before any stage runs
    command = [str(dvc or Path(sys.executable).with_name("dvc")), "repro"]
    done = subprocess.run([*command, *UPSTREAM_OF_GENERATE], check=False)
    if done.returncode != 0:
        return done.returncode
    os.environ[PROGRESS_ENV] = "0"  # units run side by side: their lines, not interleaved bars
    generated = fan_out_generation(params, echo)
    fan_out_scoring(params, [cell for cell, ok in generated.items() if ok], echo)
    return subprocess.run(command, check=False).returncode


def _in_parallel(jobs: dict, run: Callable, report: Callable) -> None:
    """`run(job)` for every job in a thread of its own (each waits on its Ray task); `report(job, result
    or error)` as each ends."""
    if not jobs:
        return
    with ThreadPoolExecutor(max_workers=min(len(jobs), 64)) as pool:
        futures = {pool.submit(run, job): job for job in jobs}
        for future in as_completed(futures):
            try:
                result = future.result()
            except QwenPipeError as error:
                result = error
            except Exception as error:  # noqa: BLE001 - one unit's failure; the others are reported
                result = QwenPipeError(f"{type(error).__name__}: {error}", "see the unit's log in logs/")
            report(futures[future], result)


def fan_out_generation(params: Params, echo: Callable[[str], None]) -> dict[Cell, bool]:
    """Every model x generating preset at once; per cell, whether it has generations to score."""
    units = {(m, p): None for m in params.run.models for p in params.generate.presets}
    ok: dict[Cell, bool] = {}

    def report(unit: tuple[str, str], result: dict | QwenPipeError) -> None:
        model, preset = unit
        if isinstance(result, QwenPipeError):
            echo(f"generate {model} x {preset}: FAILED ({result.line()})")
            ok.update({Cell(model, preset, d): False for d in params.run.datasets})
            return
        for name, outcome in result.items():
            echo(generate_line(Cell(model, preset, name), outcome))
            ok[Cell(model, preset, name)] = "failure" not in outcome

    _in_parallel(units, lambda unit: generate_pipeline_cells(params, *unit), report)
    return ok


def fan_out_scoring(params: Params, cells: Iterable[Cell], echo: Callable[[str], None]) -> None:
    """Every generated cell scored in a Ray task of its own (CPUs only): the score stage then reads every
    score from the score cache."""

    data = params.model_dump(by_alias=True)

    def run(cell: Cell):
        outcome = run_on_cluster(
            score_pipeline_cell, data, cell, cluster=params.cluster, gpus=0, fresh_process=False
        )
        if not outcome.ok:
            failure = outcome.failure
            raise QwenPipeError(f"{failure['type']}: {failure['message']}", "see the Ray logs of the cluster")
        return outcome.value

    def report(cell: Cell, result: tuple[dict, float] | QwenPipeError) -> None:
        if isinstance(result, QwenPipeError):
            echo(f"score {cell}: FAILED on the cluster ({result.line()}); the score stage will score it")
        else:
            echo(score_line(cell, *result))

    _in_parallel(dict.fromkeys(cells), run, report)
