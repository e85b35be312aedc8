"""What a person reads: a Typer app whose user errors end as one line on stderr with exit code 2 (never a
traceback), the one number format of the console and the report, and where engine logs and progress bars go."""

from __future__ import annotations

import errno
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from typer.main import get_command

from qwen_pipe.errors import QwenPipeError

if TYPE_CHECKING:
    from tqdm import tqdm


def run(app: typer.Typer, argv: list[str] | None = None) -> None:
    command = get_command(app)
    try:
        code = command.main(args=argv, prog_name=app.info.name or None, standalone_mode=False)
    except QwenPipeError as error:
        print(f"error: {error.line()}", file=sys.stderr)
        sys.exit(error.exit_code)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    except typer.TyperException as error:  # usage errors: bad option, missing argument
        show = getattr(error, "show", None)
        if show:
            show()
        else:
            print(f"error: {error.format_message()}", file=sys.stderr)
        sys.exit(error.exit_code)
    except OSError as error:  # disk full, permissions: the system's own message names the file
        print(f"error: {os_error_line(error)}", file=sys.stderr)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


LOG_DIR_ENV = "QWEN_PIPE_LOG_DIR"  # where engine logs go (default: logs/ in the working directory)
VERBOSE_ENV = "QWEN_PIPE_VERBOSE"  # 1: engine logs on the console as well (`-v`, `make run V=1`)
PROGRESS_ENV = "QWEN_PIPE_PROGRESS"  # 1: live bars on stderr, 0: none; unset: when stderr is a terminal


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def progress_enabled() -> bool:
    setting = os.environ.get(PROGRESS_ENV, "")
    if setting:
        return setting != "0"
    return sys.stderr.isatty()


def progress_bar(
    total: int, label: str, unit: str = "it", show: bool = True, bar_format: str | None = None
) -> tqdm:
    """A live bar on stderr that disappears when done (the stage's summary line stays); drawn only where
    `show` and the console allows."""
    from tqdm import tqdm

    enabled = show and progress_enabled()
    return tqdm(
        total=total,
        desc=label,
        unit=unit,
        file=sys.stderr,
        leave=False,
        disable=not enabled,
        bar_format=bar_format,
    )


def log_path(name: str) -> Path:
    """The log file of one stage or command (`generate@tiny_small-balanced-gsm8k`, `eval`): engine output
    goes there instead of the console; it is rewritten by each run of the stage."""
    folder = Path(os.environ.get(LOG_DIR_ENV) or "logs")
    return folder / (re.sub(r"[^A-Za-z0-9_.@+-]", "_", name) + ".log")


def start_log(name: str) -> Path:
    """The log file of `name` (log_path), created empty."""
    path = log_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("", encoding="utf-8")
    return path


def capture_output(log: Path | None) -> None:
    """In an engine's child process: file descriptors 1 and 2 go to the end of `log`, so everything the
    process writes (Python logging, warnings, C extensions, the engine's own worker processes) lands there;
    to stderr as well when verbose. Without a log, stdout goes to stderr: stdout belongs to the command's
    own output (--json)."""
    sys.stdout.flush()
    sys.stderr.flush()
    if log is None:
        os.dup2(2, 1)
    else:
        if verbose():  # `tee` ends when its last writer (this process or one it started) has exited
            read, fd = os.pipe()
            subprocess.Popen(["tee", "-a", str(log)], stdin=read, stdout=2)
            os.close(read)
        else:
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    # Python's own writers too, should they point elsewhere (a redirect_stdout, a test's capture)
    sys.stdout = open(1, "w", encoding="utf-8", errors="replace", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", encoding="utf-8", errors="replace", buffering=1, closefd=False)  # noqa: SIM115
    logging.basicConfig(stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s", force=True)


def show_log_tail(log: Path, lines: int = 200) -> None:
    """A failure explains itself: the end of the engine's log on stderr."""
    try:
        text = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return
    if not text:
        return
    print(f"--- last {min(lines, len(text))} of {len(text)} lines of {log} ---", file=sys.stderr)
    print("\n".join(text[-lines:]), file=sys.stderr)
    print(f"--- end of {log} ---", file=sys.stderr)


def os_error_line(error: OSError) -> str:
    where = getattr(error, "filename", None) or "a file"
    if error.errno == errno.ENOSPC:
        return f"no space left on the device while writing {where} (fix: free disk space and rerun: finished work is kept)"
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write {where}: {error.strerror} (fix: check the folder's permissions or pick another output dir)"
    return f"{error.strerror or error} ({where})"


def fmt(value, digits: int = 4) -> str:
    """The one number format of the report (tests compare it with the metrics files)."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if abs(value) >= 100:  # throughputs, token counts: the fraction is noise
            return f"{value:,.0f}"
        if abs(value) > 1:  # seconds, GiB, ratios
            return f"{value:.2f}"
        return f"{value:.{digits}f}"  # scores, fractions and their standard errors
    return str(value)


# --- live progress of engine work (a child process sends Progress events; the parent draws the bar) ---


@dataclass(frozen=True)
class Progress:
    """What a generation reports as it goes (summed over the requests since the last event)."""

    dataset: str
    total: int = 0  # requests added to the work
    done: int = 0  # requests answered, from the cache or the engine
    tokens: int = 0  # tokens the engine generated for them
    loaded: bool = False  # the engine has just finished loading

    def plus(self, other: Progress) -> Progress:
        return replace(
            self,
            total=self.total + other.total,
            done=self.done + other.done,
            tokens=self.tokens + other.tokens,
            loaded=self.loaded or other.loaded,
        )


class BatchedProgress:
    """Progress events added up and passed on at most every 0.1 s (at once when work is added or the
    engine has loaded): a message per request would cost the engine time."""

    def __init__(self, send: Callable[[Progress], None], interval: float = 0.1):
        self.send = send
        self.interval = interval
        self.pending: Progress | None = None
        self.last = 0.0

    def __call__(self, event: Progress) -> None:
        if self.pending is not None and self.pending.dataset != event.dataset:
            self.flush()
        self.pending = event if self.pending is None else self.pending.plus(event)
        if event.total or event.loaded or time.monotonic() - self.last >= self.interval:
            self.flush()

    def flush(self) -> None:
        if self.pending is not None:
            self.send(self.pending)
            self.pending = None
        self.last = time.monotonic()


class LiveBar:
    """The parent's bar for one model x preset (one engine): per dataset, requests answered (cache hits at
    once), and the engine's speed once it has loaded: tokens/s, or requests/s for log-likelihoods."""

    FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"

    def __init__(self, label: str):
        self.label = label
        self.enabled = progress_enabled()
        self.bar = None
        self.dataset: str | None = None
        self.loaded = False
        self.tokens = self.answered = 0  # by the engine, since `since`
        self.since = 0.0

    def __call__(self, event: Progress | None) -> None:
        if not self.enabled:
            return
        if event is None:  # nothing new: the clock still moves
            if self.bar is not None:
                self.bar.refresh()
            return
        if event.dataset != self.dataset:
            self.close()
            self.dataset = event.dataset
            label = f"{self.label} x {event.dataset}"
            self.bar = progress_bar(event.total, label, unit="req", bar_format=self.FORMAT)
            self.tokens = self.answered = 0
            self.since = time.monotonic()
        else:
            self.bar.total += event.total
        if event.loaded:
            self.loaded, self.since = True, time.monotonic()
        elif self.loaded:
            self.answered += event.done
        self.tokens += event.tokens
        self.bar.update(event.done)
        self.bar.set_postfix_str(self._speed(), refresh=False)
        self.bar.refresh()

    def _speed(self) -> str:
        if not self.loaded:
            return "loading the model" if self.bar.n < self.bar.total else ""
        elapsed = time.monotonic() - self.since
        if self.tokens and elapsed > 0:
            return f"{rate(self.tokens / elapsed)} tokens/s"
        if self.answered and elapsed > 0:
            return f"{rate(self.answered / elapsed)} requests/s"
        return ""

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"
