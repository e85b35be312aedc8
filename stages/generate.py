"""Stage generate: the engine's raw responses for one model x dataset, one JSONL record per sample."""

from __future__ import annotations

import typer

from qwen_pipe.config import load_params
from qwen_pipe.console import run
from qwen_pipe.engines import make_engine
from qwen_pipe.io import write_json, write_jsonl
from qwen_pipe.pipeline import DATASETS_DIR, GENERATIONS_DIR, pick_samples, run_generation
from qwen_pipe.sources.fetch import read_dataset
from qwen_pipe.tasks import get_task

app = typer.Typer(add_completion=False)


@app.command()
def main(model: str = typer.Option(...), dataset: str = typer.Option(...)) -> None:
    params = load_params()
    spec = params.model(model)
    task = get_task(dataset, shots=params.task_params(dataset).shots)
    records, info = read_dataset(DATASETS_DIR, dataset)
    samples = pick_samples(params, dataset, records)
    preset = params.preset_for(model, params.generate.preset)
    engine = make_engine(params.engine.name, spec, preset, params.engine, seed=params.generate.seed)
    try:
        generations, meta = run_generation(params, spec, task, samples, engine, info)
    finally:
        engine.close()
    out = GENERATIONS_DIR / model
    write_jsonl(out / f"{dataset}.jsonl", generations)
    write_json(out / f"{dataset}.meta.json", meta)
    typer.echo(f"{model} x {dataset}: {len(generations)} samples in {meta['seconds']} s")


if __name__ == "__main__":
    run(app)
