"""What a person reads: a Typer app whose user errors end as one line on stderr with exit code 2 (never a
traceback), and the one number format of the console and the report."""

from __future__ import annotations

import errno
import sys

import typer
from typer.main import get_command

from qwen_pipe.errors import QwenPipeError


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
