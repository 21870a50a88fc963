"""Local AWS Batch: moto keeps the records (compute environment, job queue, job definition, jobs, so
SubmitJob/DescribeJobs/TerminateJob answer as usual), and this runner executes each submitted job as a
subprocess instead of a Docker container.

moto's own Batch backend would start Docker (and `batch_simple` marks every job SUCCEEDED at once), so
`install()` replaces `BatchBackend.submit_job` in this process while the runner is active: the job record
is created exactly as moto does, but its status only moves when the runner moves it.

Per job, as ECS starts a container: the image's ENTRYPOINT (read from the Dockerfile the job definition's
Metadata.Dockerfile names; none without it) followed by the command (the container override's, else the
definition's, else the image's CMD) with Ref:: parameters substituted. `python…` becomes this interpreter
and container paths such as /app/gpu_batch/entrypoint.py map to the file in the repository.
Env: the stack's resolved environment, the definition's environment, container overrides, the runner's
extra env (e.g. DEMUCS_MODEL), AWS_BATCH_JOB_ID / AWS_BATCH_JOB_ATTEMPT / AWS_BATCH_JQ_NAME.
RetryStrategy: Attempts and EvaluateOnExit (OnExitCode / OnReason / OnStatusReason globs, first match
wins, no match = RETRY, as AWS documents; an absent reason matches "*"). A non-zero exit reports
statusReason "Essential container in task exited"; the attempt Timeout kills the process group with
statusReason "Job attempt duration exceeded timeout"; a process killed from outside is just a non-zero
exit. Losing the Spot host (statusReason "Host EC2 (instance …) terminated.") happens locally only when
`simulate_host_loss(job_id)` is called. TerminateJob/CancelJob stop the job without retry.
The job queue's JobStateTimeLimitActions apply to RUNNABLE, the state a job waits in for a free slot
(`max_jobs`, the local stand-in for GPU capacity): past maxTimeSeconds (AUDIOMIXER_LOCAL_BATCH_TIME_SCALE) a
CANCEL action ends it FAILED with the action's reason, as Batch does when no instance can be found.
Every status change is sent, as EventBridge's "Batch Job State Change" event, to each function whose
rule pattern matches (in order, on one thread, like an async invoke with 2 retries)."""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3

from audiomixer_local import functions, iam
from audiomixer_local.events import matches
from audiomixer_local.resources import FunctionSpec, LocalResources

log = logging.getLogger("audiomixer_local.batch")

HOST_LOSS_REASON = "Host EC2 (instance i-0local0000000000) terminated."
EXIT_REASON = "Essential container in task exited"
TIMEOUT_REASON = "Job attempt duration exceeded timeout"
_KILL_GRACE_S = 5.0

_active: LocalBatchRunner | None = None
_original_submit: Callable[..., Any] | None = None


def _ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def _patched_submit_job(
    backend: Any,
    job_name: str,
    job_def_id: str,
    job_queue: str,
    array_properties: dict[str, Any] | None = None,
    depends_on: list[dict[str, str]] | None = None,
    container_overrides: dict[str, Any] | None = None,
    eks_properties_override: dict[str, Any] | None = None,
    timeout: dict[str, int] | None = None,
    parameters: dict[str, str] | None = None,
    tags: dict[str, str] | None = None,
) -> tuple[str, str, str]:
    from moto.batch.exceptions import ClientException
    from moto.batch.models import JOB_NAME_REGEX, Job

    runner = _active
    if runner is None:
        assert _original_submit is not None
        return _original_submit(
            backend,
            job_name,
            job_def_id,
            job_queue,
            array_properties=array_properties or {},
            depends_on=depends_on,
            container_overrides=container_overrides,
            eks_properties_override=eks_properties_override,
            timeout=timeout,
            parameters=parameters,
            tags=tags,
        )
    if JOB_NAME_REGEX.match(job_name) is None:
        raise ClientException("Job name should match valid pattern")
    job_def = backend.get_job_definition(job_def_id)
    if job_def is None:
        raise ClientException(f"Job definition {job_def_id} does not exist")
    job_queue_obj = backend.get_job_queue(job_queue)
    if job_queue_obj is None:
        raise ClientException(f"Job queue {job_queue} does not exist")
    if array_properties and "size" in array_properties:
        raise ClientException("array jobs are not run by the local stack")
    job = Job(
        job_name,
        job_def,
        job_queue_obj,
        backend,
        log_backend=backend.logs_backend,
        container_overrides=container_overrides,
        eks_properties_override=eks_properties_override,
        depends_on=depends_on,
        all_jobs=backend._jobs,
        timeout=timeout,
        array_properties=array_properties or {},
        parameters=parameters,
        tags=tags,
    )
    job._transitions = []  # moto's state manager must not advance it; the runner does
    job.status = "SUBMITTED"
    backend._jobs[job.job_id] = job
    runner.submit(job)
    return job_name, job.job_id, job.arn


def install(runner: LocalBatchRunner) -> None:
    """Route SubmitJob (in-process mock_aws or ThreadedMotoServer alike) to `runner`."""
    global _active, _original_submit
    from moto.batch.models import BatchBackend

    if _original_submit is None:
        _original_submit = BatchBackend.submit_job
        BatchBackend.submit_job = _patched_submit_job  # type: ignore[assignment,method-assign]
    _active = runner


def uninstall(runner: LocalBatchRunner | None = None) -> None:
    global _active
    if runner is None or _active is runner:
        _active = None


def evaluate_on_exit(
    rules: list[dict[str, Any]], exit_code: int | None, reason: str | None, status_reason: str | None
) -> str:
    """RETRY or EXIT for one failed attempt (first matching rule wins; no match retries)."""
    for rule in rules:
        checks = []
        if "onExitCode" in rule:
            checks.append(
                exit_code is not None and fnmatch.fnmatchcase(str(exit_code), str(rule["onExitCode"]))
            )
        if "onReason" in rule:
            checks.append(fnmatch.fnmatchcase(reason or "", str(rule["onReason"])))
        if "onStatusReason" in rule:
            checks.append(fnmatch.fnmatchcase(status_reason or "", str(rule["onStatusReason"])))
        if checks and all(checks):
            return str(rule.get("action", "RETRY")).upper()
    return "RETRY"


@dataclass(frozen=True)
class ImageConfig:
    """What ECS takes from an image to start its container: ENTRYPOINT and CMD (exec form)."""

    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)


def _exec_form(argument: str) -> list[str]:
    """An ENTRYPOINT/CMD argument: a JSON array is exec form; anything else is shell form."""
    try:
        value = json.loads(argument)
    except ValueError:
        value = None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    return ["/bin/sh", "-c", argument]


def read_dockerfile(path: str | Path) -> ImageConfig:
    """ENTRYPOINT and CMD of the final stage of a Dockerfile, as Docker records them in the image.

    The last instruction of each kind wins; setting ENTRYPOINT clears a CMD set before it (Docker resets
    the base image's CMD the same way); a new FROM starts from nothing (a base image's own ENTRYPOINT is
    not known here, so a Dockerfile relying on one must restate it)."""
    text = Path(path).read_text(encoding="utf-8")
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # comment lines inside a continued instruction are dropped
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    if current:
        logical.append(current)
    entrypoint: list[str] = []
    cmd: list[str] = []
    for instruction in logical:
        keyword, _, argument = instruction.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            entrypoint, cmd = [], []
        elif keyword == "ENTRYPOINT":
            entrypoint, cmd = _exec_form(argument.strip()), []
        elif keyword == "CMD":
            cmd = _exec_form(argument.strip())
    return ImageConfig(entrypoint=entrypoint, cmd=cmd)


def container_argv(image: ImageConfig, command: list[str] | None) -> list[str]:
    """The argv ECS runs: ENTRYPOINT + (the job's command, or the image's CMD when it has none)."""
    return [*image.entrypoint, *(command if command else image.cmd)]


def localize_command(command: list[str], repo_root: Path, python: list[str] | None = None) -> list[str]:
    """Container command -> local command: python -> this interpreter (or `python`, e.g. the task-role
    wrapper), /app/x/y.py -> repo_root/x/y.py."""
    out: list[str] = []
    for i, part in enumerate(command):
        if i == 0 and re.fullmatch(r"python(3(\.\d+)?)?", Path(part).name):
            out.extend(python or [sys.executable])
            continue
        if part.startswith("/") and not Path(part).exists():
            tail = Path(part).parts[1:]
            mapped = next(
                (
                    repo_root.joinpath(*tail[k:])
                    for k in range(len(tail))
                    if repo_root.joinpath(*tail[k:]).exists()
                ),
                None,
            )
            out.append(str(mapped) if mapped is not None else part)
            continue
        out.append(part)
    return out


class _Run:
    """What the runner tracks for one job beyond moto's record."""

    def __init__(self, job: Any) -> None:
        self.job = job
        self.started = (
            threading.Event()
        )  # a worker took it (it left RUNNABLE); a time limit no longer applies
        self.cancelled = threading.Event()  # ended by a job-state time limit before it started
        self.timers: list[threading.Timer] = []
        self.process: subprocess.Popen[bytes] | None = None
        self.host_lost = threading.Event()
        self.attempt = 0
        self.log_files: list[str] = []


class LocalBatchRunner:
    def __init__(
        self,
        res: LocalResources,
        *,
        repo_root: str | Path | None = None,
        max_jobs: int = 1,
        extra_env: dict[str, str] | None = None,
        log_dir: str | Path | None = None,
        event_targets: list[FunctionSpec] | None = None,
        event_retries: int = 2,
    ) -> None:
        self.res = res
        self.repo_root = Path(repo_root) if repo_root else res.template.root
        self.max_jobs = max(1, max_jobs)
        self.extra_env = dict(extra_env or {})
        self.log_dir = Path(log_dir) if log_dir else None
        self.event_targets = (
            event_targets
            if event_targets is not None
            else [f for f in res.functions.values() if f.event_patterns]
        )
        self.event_retries = event_retries
        self.events: list[dict[str, Any]] = []  # every event emitted, in order
        # Deliveries that failed every try (on AWS: the BatchEventsDLQ and its alarm).
        self.failed_deliveries: list[dict[str, Any]] = []
        self._queue: queue.Queue[_Run | None] = queue.Queue()
        self._runs: dict[str, _Run] = {}
        self._recent: deque[str] = deque(maxlen=100)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self._events = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch-events")

    # --- lifecycle --------------------------------------------------------------------------------
    def start(self) -> LocalBatchRunner:
        install(self)
        for i in range(self.max_jobs):
            worker = threading.Thread(target=self._work, name=f"batch-runner-{i}", daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        uninstall(self)
        with self._lock:
            running = [r for r in self._runs.values() if r.process and r.process.poll() is None]
            for run in self._runs.values():
                for timer in run.timers:
                    timer.cancel()
        for run in running:
            self._kill(run, graceful=True)
        for _ in self._workers:
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        for worker in self._workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        self._events.shutdown(wait=True, cancel_futures=False)

    def __enter__(self) -> LocalBatchRunner:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- API --------------------------------------------------------------------------------------
    def submit(self, job: Any) -> None:
        run = _Run(job)
        with self._lock:
            self._runs[job.job_id] = run
            self._recent.append(job.job_id)
        self._emit(job)  # SUBMITTED
        self._set(run, "RUNNABLE")  # it now waits for a free slot, as a Batch job waits for capacity
        for limit in self.res.batch.time_limits.get(job.job_queue.name, []):
            if limit.get("state") == "RUNNABLE" and limit.get("action") == "CANCEL":
                timer = threading.Timer(float(limit["maxTimeSeconds"]), self._expire, (run, limit))
                timer.daemon = True
                run.timers.append(timer)
                timer.start()
        self._queue.put(run)

    def _expire(self, run: _Run, limit: dict[str, Any]) -> None:
        """A job-state time limit ran out: cancel the job unless a worker has taken it meanwhile."""
        with self._lock:
            if run.started.is_set() or run.cancelled.is_set() or run.job.job_stopped:
                return
            run.cancelled.set()
        log.warning("local batch: job %s was RUNNABLE too long; %s", run.job.job_id, limit.get("reason"))
        self._finish(run, "FAILED", str(limit.get("reason") or "job state time limit exceeded"))

    def simulate_host_loss(self, job_id: str) -> bool:
        """Kill the job's running attempt as if its Spot instance were reclaimed."""
        with self._lock:
            run = self._runs.get(job_id)
        if run is None or run.process is None or run.process.poll() is not None:
            return False
        run.host_lost.set()
        return True

    def wait(self, job_id: str, timeout: float = 60.0) -> str:
        """Block until the job reaches SUCCEEDED or FAILED; returns that status."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self._runs.get(job_id)
            if run is not None and run.job._status in ("SUCCEEDED", "FAILED"):
                self._events.submit(lambda: None).result(timeout=max(0.1, deadline - time.monotonic()))
                return str(run.job._status)
            time.sleep(0.05)
        raise TimeoutError(f"job {job_id} still running after {timeout} s")

    def jobs_summary(self) -> list[dict[str, Any]]:
        with self._lock:
            runs = [self._runs[j] for j in self._recent if j in self._runs]
        out = []
        for run in reversed(runs):
            job = run.job
            out.append(
                {
                    "jobId": job.job_id,
                    "jobName": job.job_name,
                    "status": job._status,
                    "attempt": run.attempt,
                    "statusReason": job.job_stopped_reason,
                    "parameters": dict(job.parameters),
                    "pid": run.process.pid if run.process and run.process.poll() is None else None,
                    "logs": list(run.log_files),
                    "createdAt": _ms(job.job_created_at),
                }
            )
        return out

    # --- execution --------------------------------------------------------------------------------
    def _work(self) -> None:
        while not self._stop.is_set():
            run = self._queue.get()
            if run is None:
                return
            with self._lock:
                if run.cancelled.is_set():
                    continue
                run.started.set()
            for timer in run.timers:
                timer.cancel()
            try:
                self._execute(run)
            except Exception:
                log.exception("local batch: job %s crashed the runner", run.job.job_id)
                self._finish(run, "FAILED", "local runner error")

    def _set(self, run: _Run, status: str) -> None:
        run.job.status = status
        self._emit(run.job)

    def _execute(self, run: _Run) -> None:
        job = run.job
        strategy = job.job_definition.retry_strategy or {}
        attempts = int(strategy.get("attempts", 1) or 1)
        rules = list(strategy.get("evaluateOnExit") or [])
        while True:
            if job.stop or self._stop.is_set():
                self._finish(run, "FAILED", job.job_stopped_reason or "stopped by the local stack")
                return
            run.attempt += 1
            exit_code, reason, status_reason = self._attempt(run)
            if exit_code == 0 and status_reason is None:
                self._finish(run, "SUCCEEDED", None)
                return
            if job.stop or self._stop.is_set():
                self._finish(run, "FAILED", job.job_stopped_reason or status_reason)
                return
            action = evaluate_on_exit(rules, exit_code, reason, status_reason)
            if action == "RETRY" and run.attempt < attempts:
                log.info(
                    "local batch: job %s attempt %d failed (%s); retrying",
                    job.job_id,
                    run.attempt,
                    status_reason,
                )
                self._set(run, "RUNNABLE")
                continue
            self._finish(run, "FAILED", status_reason)
            return

    def _finish(self, run: _Run, status: str, status_reason: str | None) -> None:
        job = run.job
        job.job_stopped = True
        job.job_stopped_at = datetime.now()
        if status_reason is not None:
            job.job_stopped_reason = status_reason
        self._set(run, status)

    def image_config(self, job: Any) -> ImageConfig:
        """The image of the job's definition: its Dockerfile's ENTRYPOINT/CMD, or none (a bare image)."""
        dockerfile = self.res.batch.dockerfiles.get(job.job_definition.name)
        return read_dockerfile(dockerfile) if dockerfile else ImageConfig()

    def _command(self, job: Any) -> list[str]:
        # Batch substitutes Ref:: parameters in the command only, never in the image's ENTRYPOINT.
        command = job._add_parameters_to_command(list(job._get_container_property("command", []) or []))
        python = None
        if self.res.job_principal(job.job_definition.name) is not None:
            # The job's AWS calls are checked against its role (see audiomixer_local.task).
            python = [sys.executable, "-m", "audiomixer_local.task"]
        return localize_command(container_argv(self.image_config(job), command), self.repo_root, python)

    def _env(self, job: Any, attempt: int) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.res.process_env())
        for entry in job.job_definition.container_properties.get("environment") or []:
            env[entry["name"]] = str(entry["value"])
        for entry in (job.container_overrides or {}).get("environment") or []:
            env[entry["name"]] = str(entry["value"])
        # The definition was registered with the AWS form of these; locally they point at this machine.
        for key in ("AUDIOMIXER_WS_ENDPOINT", "AWS_ENDPOINT_URL"):
            if key in self.res.env:
                env[key] = self.res.env[key]
        env.update(self.extra_env)
        env.pop(iam.TASK_ROLE_ENV, None)
        principal = self.res.job_principal(job.job_definition.name)
        if principal is not None:
            env[iam.TASK_ROLE_ENV] = principal.to_json()
            if self.res.websocket:
                env[iam.WS_API_ID_ENV] = self.res.websocket.api_id
        env.update(
            {
                "AWS_BATCH_JOB_ID": job.job_id,
                "AWS_BATCH_JOB_ATTEMPT": str(attempt),
                "AWS_BATCH_JQ_NAME": job.job_queue.name,
                "AWS_BATCH_CE_NAME": job.job_queue.environments[0].name if job.job_queue.environments else "",
            }
        )
        return env

    def _attempt(self, run: _Run) -> tuple[int | None, str | None, str | None]:
        """Run one attempt; returns (exit code, container reason, status reason or None on success)."""
        job = run.job
        run.host_lost.clear()
        self._set(run, "STARTING")
        command = self._command(job)
        job.log_stream_name = job._stream_name
        log_path = None
        if self.log_dir:
            log_path = self.log_dir / job.job_id / f"attempt-{run.attempt}.log"
            log_path.parent.mkdir(parents=True, exist_ok=True)
            run.log_files.append(str(log_path))
        out = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115
        started = datetime.now()
        try:
            run.process = subprocess.Popen(
                command,
                cwd=self.repo_root,
                env=self._env(job, run.attempt),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group, so stop() reaches grandchildren too
            )
        except OSError as exc:
            if log_path:
                out.close()  # type: ignore[union-attr]
            self._record_attempt(job, started, None, f"CannotStartContainerError: {exc}", EXIT_REASON)
            return None, f"CannotStartContainerError: {exc}", EXIT_REASON
        job.job_started_at = started
        self._set(run, "RUNNING")
        limit = (job.timeout or job.job_definition.timeout or {}).get("attemptDurationSeconds")
        deadline = time.monotonic() + float(limit) if limit else None
        status_reason: str | None = None
        try:
            while run.process.poll() is None:
                if run.host_lost.is_set():
                    self._kill(run, graceful=False)
                    status_reason = HOST_LOSS_REASON
                elif job.stop:
                    self._kill(run, graceful=True)
                    status_reason = job.job_stopped_reason or "Terminated"
                elif deadline is not None and time.monotonic() > deadline:
                    self._kill(run, graceful=True)
                    status_reason = TIMEOUT_REASON
                time.sleep(0.05)
        finally:
            if log_path:
                out.close()  # type: ignore[union-attr]
        exit_code: int | None = run.process.returncode
        if status_reason == HOST_LOSS_REASON:
            exit_code = None  # the container never reported an exit code
        elif exit_code != 0 and status_reason is None:
            status_reason = EXIT_REASON
        job.exit_code = exit_code
        self._record_attempt(job, started, exit_code, None, status_reason)
        return exit_code, None, status_reason

    def _record_attempt(
        self,
        job: Any,
        started: datetime,
        exit_code: int | None,
        reason: str | None,
        status_reason: str | None,
    ) -> None:
        ecs = f"arn:aws:ecs:{self.res.region}:{self.res.account_id}"
        container: dict[str, Any] = {
            "containerInstanceArn": f"{ecs}:container-instance/local",
            "taskArn": f"{ecs}:task/local/{uuid.uuid4().hex}",
            "logStreamName": job._stream_name,
            "networkInterfaces": [],
        }
        if exit_code is not None:
            container["exitCode"] = exit_code
        if reason:
            container["reason"] = reason
        attempt: dict[str, Any] = {
            "container": container,
            "startedAt": _ms(started),
            "stoppedAt": _ms(datetime.now()),
        }
        if status_reason:
            attempt["statusReason"] = status_reason
        job.attempts.append(attempt)

    def _kill(self, run: _Run, graceful: bool) -> None:
        process = run.process
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM if graceful else signal.SIGKILL)
            if graceful:
                try:
                    process.wait(_KILL_GRACE_S)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
            process.wait(_KILL_GRACE_S)
        except (ProcessLookupError, PermissionError, subprocess.TimeoutExpired):
            pass

    # --- events -----------------------------------------------------------------------------------
    def state_change_event(self, job: Any) -> dict[str, Any]:
        """The EventBridge "Batch Job State Change" event for the job's current state."""
        described = job.describe()
        container = dict(described.get("container") or {})
        container.setdefault("image", job.job_definition.container_properties.get("image"))
        container["command"] = job._add_parameters_to_command(list(container.get("command") or []))
        container.setdefault(
            "resourceRequirements", job.job_definition.container_properties.get("resourceRequirements", [])
        )
        container.setdefault("mountPoints", [])
        container.setdefault("secrets", [])
        container.setdefault("networkInterfaces", [])
        if job.job_stopped and job.exit_code is not None:
            container["exitCode"] = job.exit_code
        detail: dict[str, Any] = {
            "jobArn": job.arn,
            "jobName": job.job_name,
            "jobId": job.job_id,
            "jobQueue": job.job_queue.arn,
            "status": job._status,
            "attempts": [dict(a) for a in job.attempts],
            "createdAt": _ms(job.job_created_at),
            "retryStrategy": dict(job.job_definition.retry_strategy or {"attempts": 1}),
            "dependsOn": list(job.depends_on or []),
            "jobDefinition": job.job_definition.arn,
            "parameters": dict(job.parameters),
            "container": container,
            "tags": described.get("tags") or {},
            "propagateTags": bool(job.job_definition.propagate_tags),
            "platformCapabilities": list(job.job_definition.platform_capabilities or []),
        }
        if job._status == "RUNNING" or job.attempts:
            detail["startedAt"] = _ms(job.job_started_at)
        if job.job_stopped:
            detail["stoppedAt"] = _ms(job.job_stopped_at)
        if job.job_stopped_reason and job._status in ("SUCCEEDED", "FAILED"):
            detail["statusReason"] = job.job_stopped_reason
        elif job._status == "RUNNABLE" and job.attempts:
            detail["statusReason"] = job.attempts[-1].get("statusReason")
        if job.timeout or job.job_definition.timeout:
            detail["timeout"] = dict(job.timeout or job.job_definition.timeout)
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Batch Job State Change",
            "source": "aws.batch",
            "account": self.res.account_id,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self.res.region,
            "resources": [job.arn],
            "detail": detail,
        }

    def _emit(self, job: Any) -> None:
        event = self.state_change_event(job)
        with self._lock:
            self.events.append(event)
        targets = [f for f in self.event_targets if any(matches(p, event) for p in f.event_patterns)]
        if targets:
            self._events.submit(self._deliver, event, targets)

    def _dead_letter(self, target: FunctionSpec, event: dict[str, Any], exc: Exception) -> None:
        """As EventBridge's DeadLetterConfig does on AWS: the raw event, with why it failed as message
        attributes, goes to the function's event DLQ (for the dead-letter consumer to end its project)."""
        if target.event_dlq is None or target.event_dlq not in self.res.queues:
            return
        sqs = boto3.client("sqs", region_name=self.res.region, endpoint_url=self.res.endpoint_url)
        try:
            sqs.send_message(
                QueueUrl=self.res.queues[target.event_dlq].url,
                MessageBody=json.dumps(event),
                MessageAttributes={
                    "ERROR_CODE": {"DataType": "String", "StringValue": type(exc).__name__},
                    "ERROR_MESSAGE": {"DataType": "String", "StringValue": str(exc)[:256] or "-"},
                },
            )
        except Exception:
            log.exception("local batch: could not dead-letter the %s event", event["detail"]["status"])

    def _deliver(self, event: dict[str, Any], targets: list[FunctionSpec]) -> None:
        for target in targets:
            for attempt in range(self.event_retries + 1):
                try:
                    functions.invoke(target, event)
                    break
                except Exception as exc:
                    if attempt == self.event_retries:
                        with self._lock:
                            self.failed_deliveries.append(
                                {
                                    "function": target.logical_id,
                                    "jobId": event["detail"]["jobId"],
                                    "status": event["detail"]["status"],
                                    "error": f"{type(exc).__name__}: {exc}",
                                }
                            )
                        self._dead_letter(target, event, exc)
                    log.exception(
                        "local batch: %s failed on %s event (try %d)",
                        target.logical_id,
                        event["detail"]["status"],
                        attempt + 1,
                    )
