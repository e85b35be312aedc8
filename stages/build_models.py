"""Stage build_models: the tiny random-weight Qwen3 models of params.yaml, in data/models/<name>."""

from __future__ import annotations

import shutil

import typer

from qwen_pipe.config import MODELS_DIR, load_params
from qwen_pipe.console import run

app = typer.Typer(add_completion=False)


@app.command()
def main() -> None:
    params = load_params()
    if MODELS_DIR.exists():
        shutil.rmtree(MODELS_DIR)
    built = []
    for name, tiny in params.tiny_models.items():
        tiny.build(MODELS_DIR / name)
        built.append(f"{name} ({tiny.spec(name).parameters:,} parameters)")
    typer.echo(f"build_models: {', '.join(built) or 'no tiny model in params.yaml'} -> {MODELS_DIR}")


if __name__ == "__main__":
    run(app)
