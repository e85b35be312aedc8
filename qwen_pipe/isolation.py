"""Running work that may crash the interpreter (an engine segfault, an out-of-memory kill) in a child.

The parent survives anything the child does and gets back either the child's result or a structured
failure: error type, message and exit code.
"""

from __future__ import annotations

import multiprocessing
import queue as queue_module
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from qwen_pipe.errors import QwenPipeError


@dataclass
class Outcome:
    ok: bool
    value: object = None
    failure: dict | None = None


def _child(queue, target: Callable, args: tuple) -> None:
    try:
        queue.put(("ok", target(*args)))
    except QwenPipeError as error:
        queue.put(("error", {"type": "QwenPipeError", "message": error.line(), "trace": None}))
    except BaseException as error:  # noqa: BLE001 - everything is reported to the parent
        queue.put(
            (
                "error",
                {
                    "type": type(error).__name__,
                    "message": str(error)[:500],
                    "trace": traceback.format_exc()[-3000:],
                },
            )
        )


def _start_method() -> str:
    """fork is fast (no re-import); it is safe while the parent has loaded no torch/CUDA and runs no threads."""
    if sys.platform == "linux" and "torch" not in sys.modules and threading.active_count() == 1:
        return "fork"
    return "spawn"


def run_isolated(target: Callable, *args) -> Outcome:
    """Call `target(*args)` in a child process; `target` must be importable and args picklable."""
    context = multiprocessing.get_context(_start_method())
    queue = context.Queue()
    child = context.Process(target=_child, args=(queue, target, args))
    child.start()
    result = None
    while result is None:
        try:
            result = queue.get(timeout=1.0)
        except queue_module.Empty:
            if not child.is_alive():
                try:  # the child may have put its result just before exiting
                    result = queue.get(timeout=1.0)
                except queue_module.Empty:
                    break
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
