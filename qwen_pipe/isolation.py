"""Running work that may crash the interpreter (an engine segfault, an out-of-memory kill) in a child.

The parent survives anything the child does and gets back either the child's result or a structured
failure: error type, message and exit code. The child's output goes to a log file, and its progress
events reach the parent as they happen (the parent draws the bar).
"""

from __future__ import annotations

import multiprocessing
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from qwen_pipe.console import capture_output
from qwen_pipe.errors import QwenPipeError


@dataclass
class Outcome:
    ok: bool
    value: object = None
    failure: dict | None = None


def _child(conn, target: Callable, args: tuple, log: Path | None, with_progress: bool) -> None:
    capture_output(log)
    kwargs = {"progress": lambda event: conn.send(("progress", event))} if with_progress else {}
    conn.send(call_reporting(target, args, kwargs))


def call_reporting(target: Callable, args: tuple, kwargs: dict) -> tuple[str, object]:
    """("ok", what `target` returned) or ("error", {type, message, trace}): what a worker sends back."""
    try:
        return "ok", target(*args, **kwargs)
    except QwenPipeError as error:
        return "error", {"type": "QwenPipeError", "message": error.line(), "trace": None}
    except BaseException as error:  # noqa: BLE001 - everything is reported to the parent
        return "error", {
            "type": type(error).__name__,
            "message": str(error)[:500],
            "trace": traceback.format_exc()[-3000:],
        }


def _start_method() -> str:
    """fork is fast (no re-import); it is safe while the parent has loaded no torch/CUDA and runs no threads."""
    if sys.platform == "linux" and "torch" not in sys.modules and threading.active_count() == 1:
        return "fork"
    return "spawn"


def run_isolated(
    target: Callable,
    *args,
    log: Path | None = None,
    on_progress: Callable[[object | None], None] | None = None,
) -> Outcome:
    """Call `target(*args)` in a child process; `target` must be importable and args picklable.

    The child's output (file descriptors 1 and 2) goes to `log`, or to stderr without one. With
    `on_progress`, the target gets a `progress` argument: each event it sends reaches `on_progress` in
    the parent as it happens, and `on_progress(None)` is called when nothing came for a while (a bar can
    redraw its clock).
    """
    context = multiprocessing.get_context(_start_method())
    reader, writer = context.Pipe(duplex=False)
    sys.stdout.flush()  # a forked child would write the parent's pending output again
    sys.stderr.flush()
    child = context.Process(target=_child, args=(writer, target, args, log, on_progress is not None))
    child.start()
    writer.close()
    result = None
    while result is None:
        alive = child.is_alive()  # checked before waiting: what the child sent before it died is read
        if not reader.poll(0.5):
            if not alive:
                break
            if on_progress is not None:
                on_progress(None)
            continue
        try:
            kind, payload = reader.recv()
        except (EOFError, OSError):  # the child died halfway through a message
            break
        if kind == "progress":
            if on_progress is not None:
                on_progress(payload)
        else:
            result = kind, payload
    reader.close()
    child.join()
    if result is None:
        return Outcome(
            False,
            failure={
                "type": "EngineCrash",
                "message": f"the worker process died with exit code {child.exitcode} (a crash or an out-of-memory kill)",
                "exitcode": child.exitcode,
                "trace": None,
            },
        )
    status, payload = result
    if status == "ok":
        return Outcome(True, payload)
    return Outcome(False, failure={**payload, "exitcode": child.exitcode})
