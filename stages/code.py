"""Stage code: one manifest per stage (and per dataset where the stage has that axis) in data/code/, naming
every file the stage's code imports with its hash. Each stage depends on its manifest, so an edit reruns
exactly the stages whose code it touches, and DVC checks one folder instead of every file in every stage.
"""

from __future__ import annotations

import typer

from qwen_pipe.codedeps import MANIFEST_DIR, manifests, write_manifests
from qwen_pipe.console import run

app = typer.Typer(add_completion=False)


@app.command()
def main() -> None:
    changed = write_manifests()
    shown = ", ".join(name.removesuffix(".json") for name in changed[:8])
    more = f" and {len(changed) - 8} more" if len(changed) > 8 else ""
    typer.echo(
        f"code: {len(manifests())} manifests in {MANIFEST_DIR}/, "
        + (f"{len(changed)} changed ({shown}{more})" if changed else "none changed")
    )


if __name__ == "__main__":
    run(app)
