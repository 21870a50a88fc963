"""`python` inside a local Batch job: run as the job's task role, then behave like the interpreter.

ECS gives a container its job role's credentials; locally the runner starts
`python -m audiomixer_local.task ARGS...` with that role's policies in AUDIOMIXER_LOCAL_TASK_ROLE, so every
AWS call the job makes is checked by audiomixer_local.iam, from every thread, for the whole process.
ARGS are what `python` would get: a script path, `-c CODE` or `-m MODULE`, then its arguments."""

from __future__ import annotations

import runpy
import sys

from audiomixer_local import iam


def main(argv: list[str]) -> None:
    principal = iam.principal_from_env()
    if principal is not None:
        iam.run_as_process(principal)
    if not argv:
        raise SystemExit("usage: python -m audiomixer_local.task (SCRIPT | -c CODE | -m MODULE) [ARGS...]")
    if argv[0] == "-c":
        sys.argv = ["-c", *argv[2:]]
        exec(compile(argv[1], "<string>", "exec"), {"__name__": "__main__"})
    elif argv[0] == "-m":
        sys.argv = [argv[1], *argv[2:]]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = list(argv)
        sys.path[0] = str(__import__("pathlib").Path(argv[0]).resolve().parent)
        runpy.run_path(argv[0], run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
