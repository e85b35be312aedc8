"""Running untrusted, model-written programs: a namespace sandbox per worker, a judge outside it."""

from qwen_pipe.sandbox.executor import (
    Program,
    ProgramResult,
    SandboxConfig,
    isolation_mode,
    keep_judges,
    run_programs,
)

__all__ = ["Program", "ProgramResult", "SandboxConfig", "isolation_mode", "keep_judges", "run_programs"]
