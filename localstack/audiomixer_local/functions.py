"""Loads a function's `functions/<dir>/app.py` by path and invokes its handler in-process with a
LambdaContext look-alike, the way the Lambda runtime would.

Each function has its own log context, as each Lambda sandbox has on AWS: powertools' Logger keeps the
keys that `inject_lambda_context` appends (function_name, request id, cold_start, ...) on one formatter
shared by every `Logger(service="audiomixer")` in a process, so with every function in this one process the
last invocation on any thread (a Batch state change, say) stamped its name on the records of all the
others. `isolate_log_context()` gives that formatter one set of keys per sandbox (function and thread)."""

from __future__ import annotations

import importlib.util
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from audiomixer_local import iam
from audiomixer_local.resources import FunctionSpec

_lock = threading.Lock()
_modules: dict[Path, ModuleType] = {}
# The log keys of the sandbox the current invocation runs in; None outside an invocation.
# (per formatter: id(formatter) -> its keys in this sandbox)
_sandbox_keys: ContextVar[dict[int, dict[str, Any]] | None] = ContextVar(
    "audiomixer_local_sandbox_keys", default=None
)
_sandboxes: dict[tuple[str, int], dict[int, dict[str, Any]]] = {}


def isolate_log_context() -> None:
    """Make powertools' formatter keep its appended keys per sandbox instead of per process (idempotent).
    Outside an invocation (the stack's own threads) it keeps the process-wide keys it always had."""
    from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

    if isinstance(LambdaPowertoolsFormatter.__dict__.get("log_format"), property):
        return

    def get(self: Any) -> dict[str, Any]:
        shared: dict[str, Any] = self.__dict__["log_format"]
        sandbox = _sandbox_keys.get()
        if sandbox is None:
            return shared
        # A fresh sandbox starts from the keys the formatter was built with (service, level, ...).
        per_formatter: dict[str, Any] = sandbox.setdefault(id(self), dict(shared))
        return per_formatter

    def set_(self: Any, value: dict[str, Any]) -> None:
        sandbox = _sandbox_keys.get()
        if sandbox is None or "log_format" not in self.__dict__:
            self.__dict__["log_format"] = value
        else:
            sandbox[id(self)] = value

    LambdaPowertoolsFormatter.log_format = property(get, set_)  # type: ignore[assignment]


def module_name(path: Path) -> str:
    # Every function's file is called app.py; a unique name keeps them apart in sys.modules.
    digest = re.sub(r"\W", "_", str(path.resolve().with_suffix("")).strip("/"))
    return f"audiomixer_local_fn__{digest}"


def load_module(path: Path) -> ModuleType:
    """Import a handler file once per process (cold start) and cache it (warm invocations)."""
    path = path.resolve()
    with _lock:
        if path in _modules:
            return _modules[path]
        if not path.exists():
            raise FileNotFoundError(f"handler file {path} does not exist")
        name = module_name(path)
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
        _modules[path] = module
        return module


def load_handler(spec: FunctionSpec) -> Callable[[Any, Any], Any]:
    module = load_module(spec.module_file)
    handler = getattr(module, spec.handler_attr, None)
    if not callable(handler):
        raise AttributeError(f"{spec.module_file} has no callable {spec.handler_attr!r}")
    return handler


@dataclass
class LambdaContext:
    """The attributes of the Lambda runtime's context object that handlers and powertools read."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    timeout_s: float
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = ""
    identity: Any = None
    client_context: Any = None
    _deadline: float = 0.0

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_s
        self.log_group_name = self.log_group_name or f"/aws/lambda/{self.function_name}"
        self.log_stream_name = self.log_stream_name or time.strftime("%Y/%m/%d/[$LATEST]") + uuid.uuid4().hex

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def make_context(spec: FunctionSpec) -> LambdaContext:
    return LambdaContext(
        function_name=spec.name,
        invoked_function_arn=spec.arn,
        memory_limit_in_mb=spec.memory_mb,
        timeout_s=spec.timeout_s,
    )


@dataclass
class Invocation:
    result: Any
    duration_s: float
    timed_out: bool


def invoke(spec: FunctionSpec, event: Any) -> Invocation:
    """Run the handler once. Exceptions propagate (the caller decides what a failure means); a run
    longer than the function's Timeout is reported as timed out, since an in-process call cannot be
    killed the way Lambda kills a sandbox. Its AWS calls are checked against the function's policies."""
    handler = load_handler(spec)
    context = make_context(spec)
    isolate_log_context()
    with _lock:
        # One sandbox per function and calling thread: a poller thread is a warm sandbox of its function.
        keys = _sandboxes.setdefault((spec.name, threading.get_ident()), {})
    token = _sandbox_keys.set(keys)
    started = time.monotonic()
    try:
        with iam.acting_as(spec.principal):
            result = handler(event, context)
    finally:
        _sandbox_keys.reset(token)
    duration = time.monotonic() - started
    return Invocation(result=result, duration_s=duration, timed_out=duration > spec.timeout_s)
