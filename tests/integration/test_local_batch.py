"""The local Batch runner: SubmitJob through boto3 runs a subprocess, honours the retry strategy and the
attempt timeout, reflects status in DescribeJobs and emits Batch Job State Change events in order."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from audiomixer_local import functions
from audiomixer_local.batch import (
    EXIT_REASON,
    HOST_LOSS_REASON,
    TIMEOUT_REASON,
    ImageConfig,
    LocalBatchRunner,
    container_argv,
    evaluate_on_exit,
    localize_command,
    read_dockerfile,
)
from audiomixer_local.events import matches
from audiomixer_local.resources import LocalResources, create_resources

FIXTURE = Path(__file__).parent / "fixtures" / "local_template.yaml"
RULES = [{"onStatusReason": "Host EC2*", "action": "RETRY"}, {"onReason": "*", "action": "EXIT"}]

# Writes what the job saw, then behaves per attempt: "ok", "exit3", or "sleep" (until killed).
SCRIPT = """
import json, os, sys, time
out, plan = sys.argv[1], sys.argv[2].split(",")
attempt = int(os.environ["AWS_BATCH_JOB_ATTEMPT"])
with open(out, "a") as fh:
    fh.write(json.dumps({"argv": sys.argv[3:], "attempt": attempt, "job_id": os.environ["AWS_BATCH_JOB_ID"],
                         "jq": os.environ["AWS_BATCH_JQ_NAME"], "bucket": os.environ.get("AUDIOMIXER_BUCKET"),
                         "model": os.environ.get("DEMUCS_MODEL")}) + "\\n")
step = plan[min(attempt, len(plan)) - 1]
if step == "sleep":
    time.sleep(60)
sys.exit(3 if step == "exit3" else 0)
"""


@pytest.fixture
def res(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalResources]:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        yield create_resources(FIXTURE)


@pytest.fixture
def runner(res: LocalResources, tmp_path: Path) -> Iterator[LocalBatchRunner]:
    recorder = functions.load_module(res.function("BatchEventsFunction").module_file)
    recorder.EVENTS.clear()
    with LocalBatchRunner(res, log_dir=tmp_path / "logs", extra_env={"DEMUCS_MODEL": "demucs_unittest"}) as r:
        yield r


def _submit(res: LocalResources, tmp_path: Path, plan: str, timeout_s: int | None = None) -> str:
    kwargs: dict[str, Any] = {}
    if timeout_s:
        kwargs["timeout"] = {"attemptDurationSeconds": timeout_s}
    return str(
        boto3.client("batch").submit_job(
            jobName="separate-test",
            jobQueue=res.env["AUDIOMIXER_BATCH_JOB_QUEUE"],
            jobDefinition=res.env["AUDIOMIXER_BATCH_JOB_DEFINITION"],
            parameters={"tenant_id": "dev", "project_id": "p1", "source_key": "dev/projects/p1/source.flac"},
            containerOverrides={
                "command": [
                    "python",
                    "-c",
                    SCRIPT,
                    str(tmp_path / "seen.jsonl"),
                    plan,
                    "Ref::tenant_id",
                    "Ref::project_id",
                ]
            },
            **kwargs,
        )["jobId"]
    )


def _seen(tmp_path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (tmp_path / "seen.jsonl").read_text().splitlines()]


def _statuses(events: list[dict[str, Any]], job_id: str) -> list[str]:
    return [e["detail"]["status"] for e in events if e["detail"]["jobId"] == job_id]


def test_successful_job_runs_once_with_parameters_env_and_ordered_events(
    res: LocalResources, runner: LocalBatchRunner, tmp_path: Path
) -> None:
    job_id = _submit(res, tmp_path, "ok")
    assert runner.wait(job_id, 30) == "SUCCEEDED"
    (seen,) = _seen(tmp_path)
    assert seen["argv"] == ["dev", "p1"]  # Ref:: parameters substituted
    assert (seen["attempt"], seen["job_id"], seen["jq"]) == (1, job_id, "audiomixer-SeparationJobQueue")
    assert seen["bucket"] == res.buckets["AudioBucket"]  # the definition's environment
    assert seen["model"] == "demucs_unittest"  # the runner's extra env wins over the definition's
    recorder = functions.load_module(res.function("BatchEventsFunction").module_file)
    assert _statuses(recorder.EVENTS, job_id) == ["SUBMITTED", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED"]
    last = recorder.EVENTS[-1]
    assert (last["source"], last["detail-type"], last["resources"]) == (
        "aws.batch",
        "Batch Job State Change",
        [last["detail"]["jobArn"]],
    )
    detail = last["detail"]
    assert detail["jobQueue"] == res.env["AUDIOMIXER_BATCH_JOB_QUEUE"]
    assert detail["parameters"]["source_key"] == "dev/projects/p1/source.flac"
    assert detail["attempts"][0]["container"]["exitCode"] == 0
    assert detail["container"]["exitCode"] == 0
    assert detail["stoppedAt"] >= detail["startedAt"] >= detail["createdAt"]
    (described,) = boto3.client("batch").describe_jobs(jobs=[job_id])["jobs"]
    assert described["status"] == "SUCCEEDED"
    assert len(described["attempts"]) == 1


def test_nonzero_exit_is_not_retried_by_the_template_strategy(
    res: LocalResources, runner: LocalBatchRunner, tmp_path: Path
) -> None:
    job_id = _submit(res, tmp_path, "exit3")
    assert runner.wait(job_id, 30) == "FAILED"
    assert len(_seen(tmp_path)) == 1  # OnReason "*" -> EXIT
    (described,) = boto3.client("batch").describe_jobs(jobs=[job_id])["jobs"]
    assert described["status"] == "FAILED"
    assert described["statusReason"] == EXIT_REASON
    assert described["attempts"][0]["container"]["exitCode"] == 3
    failed = [e for e in runner.events if e["detail"]["status"] == "FAILED"]
    assert failed[0]["detail"]["container"]["exitCode"] == 3


def test_host_loss_is_retried_and_the_next_attempt_succeeds(
    res: LocalResources, runner: LocalBatchRunner, tmp_path: Path
) -> None:
    job_id = _submit(res, tmp_path, "sleep,ok")
    deadline = time.monotonic() + 20
    while not (tmp_path / "seen.jsonl").exists():  # attempt 1 is running (and sleeping)
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert runner.simulate_host_loss(job_id)
    assert runner.wait(job_id, 30) == "SUCCEEDED"
    assert [s["attempt"] for s in _seen(tmp_path)] == [1, 2]
    assert _statuses(runner.events, job_id) == [
        "SUBMITTED",
        "RUNNABLE",
        "STARTING",
        "RUNNING",
        "RUNNABLE",
        "STARTING",
        "RUNNING",
        "SUCCEEDED",
    ]
    (described,) = boto3.client("batch").describe_jobs(jobs=[job_id])["jobs"]
    first, second = described["attempts"]
    assert first["statusReason"] == HOST_LOSS_REASON and "exitCode" not in first["container"]
    assert second["container"]["exitCode"] == 0


def test_attempt_timeout_kills_the_job(res: LocalResources, runner: LocalBatchRunner, tmp_path: Path) -> None:
    job_id = _submit(res, tmp_path, "sleep", timeout_s=1)
    assert runner.wait(job_id, 30) == "FAILED"
    (described,) = boto3.client("batch").describe_jobs(jobs=[job_id])["jobs"]
    assert described["statusReason"] == TIMEOUT_REASON
    summary = runner.jobs_summary()[0]
    assert summary["jobId"] == job_id and summary["status"] == "FAILED" and summary["logs"]


def test_event_pattern_filters_deliveries() -> None:
    event = {
        "source": "aws.batch",
        "detail-type": "Batch Job State Change",
        "detail": {"status": "RUNNING", "n": 5},
    }
    assert matches({"source": ["aws.batch"], "detail": {"status": ["RUNNING", "FAILED"]}}, event)
    assert not matches({"detail": {"status": ["FAILED", "SUCCEEDED"]}}, event)
    assert matches(
        {"detail": {"status": [{"anything-but": ["FAILED"]}], "n": [{"numeric": [">", 1, "<=", 5]}]}}, event
    )
    assert matches({"detail": {"missing": [{"exists": False}], "status": [{"prefix": "RUN"}]}}, event)
    assert not matches({"detail": {"status": [{"exists": False}]}}, event)


def test_evaluate_on_exit_and_command_localization(tmp_path: Path) -> None:
    assert evaluate_on_exit(RULES, None, None, HOST_LOSS_REASON) == "RETRY"
    assert evaluate_on_exit(RULES, 1, None, EXIT_REASON) == "EXIT"
    assert evaluate_on_exit([{"onExitCode": "13*", "action": "exit"}], 137, None, EXIT_REASON) == "EXIT"
    assert (
        evaluate_on_exit([{"onExitCode": "2", "action": "EXIT"}], 1, None, EXIT_REASON) == "RETRY"
    )  # no match
    (tmp_path / "gpu_batch").mkdir()
    (tmp_path / "gpu_batch" / "entrypoint.py").write_text("")
    command = ["python", "/app/gpu_batch/entrypoint.py", "dev", "/abs/not/here"]
    assert localize_command(command, tmp_path) == [
        sys.executable,
        str(tmp_path / "gpu_batch" / "entrypoint.py"),
        "dev",
        "/abs/not/here",
    ]


# --------------------------------------------------------------------------- ENTRYPOINT + Command (ECS)
ROOT = Path(__file__).resolve().parents[2]
OLD_COMMAND = (
    '["python", "/app/gpu_batch/entrypoint.py", "Ref::tenant_id", "Ref::project_id", "Ref::source_key"]'
)


def test_dockerfile_entrypoint_and_cmd_are_read_as_docker_records_them(tmp_path: Path) -> None:
    assert read_dockerfile(ROOT / "gpu_batch" / "Dockerfile") == ImageConfig(
        entrypoint=["python", "/app/gpu_batch/entrypoint.py"], cmd=[]
    )
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        'FROM a AS build\nENTRYPOINT ["ignored"]\nFROM b\n# comment\nCMD ["--help"]\n'
        'ENTRYPOINT python \\\n  run.py\nCMD ["x", "y"]\n'
    )
    image = read_dockerfile(dockerfile)
    # Shell form runs under /bin/sh -c; ENTRYPOINT cleared the earlier CMD; a new FROM forgot stage 1.
    assert image == ImageConfig(entrypoint=["/bin/sh", "-c", "python  run.py"], cmd=["x", "y"])
    assert container_argv(image, []) == ["/bin/sh", "-c", "python  run.py", "x", "y"]
    assert container_argv(image, ["z"]) == ["/bin/sh", "-c", "python  run.py", "z"]


@pytest.fixture
def moto_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A moto server the job subprocess can reach (in-process mock_aws cannot be seen from a child)."""
    from moto.moto_api._internal.models import moto_api_backend
    from moto.server import ThreadedMotoServer

    from audiomixer_local.stack import free_port

    moto_api_backend.reset()  # the server serves this process's moto backends: start from nothing
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(key, value)
    try:
        yield endpoint
    finally:
        server.stop()
        moto_api_backend.reset()


@pytest.mark.parametrize("command", ["template", "old"])
def test_the_separation_job_runs_entrypoint_plus_command_as_ecs_does(
    moto_server: str, tmp_path: Path, command: str
) -> None:
    """The real job definition with the real entrypoint: the template's Command (arguments only) reaches
    the separation main; the reviewed template's Command, which repeated `python entrypoint.py`, hands
    it five arguments and argparse exits 2, exactly what every job did on AWS."""
    template = ROOT / "template.yaml"
    if command == "old":
        text = template.read_text()
        current = '["Ref::tenant_id", "Ref::project_id", "Ref::source_key"]'
        assert current in text
        (tmp_path / "gpu_batch").symlink_to(ROOT / "gpu_batch")
        (tmp_path / "functions").symlink_to(ROOT / "functions")
        template = tmp_path / "template.yaml"
        template.write_text(text.replace(current, OLD_COMMAND))
    res = create_resources(template, endpoint_url=moto_server)
    with LocalBatchRunner(res, log_dir=tmp_path / "logs", event_targets=[]) as runner:
        job_id = boto3.client("batch").submit_job(
            jobName="separate-entrypoint",
            jobQueue=res.env["AUDIOMIXER_BATCH_JOB_QUEUE"],
            jobDefinition=res.env["AUDIOMIXER_BATCH_JOB_DEFINITION"],
            # No such project: the separation main has nothing to do and exits 0.
            parameters={"tenant_id": "dev", "project_id": "p1", "source_key": "dev/projects/p1/source.flac"},
        )["jobId"]
        status = runner.wait(job_id, 120)
        (summary,) = runner.jobs_summary()
    log_text = Path(summary["logs"][-1]).read_text()
    (described,) = boto3.client("batch").describe_jobs(jobs=[job_id])["jobs"]
    if command == "template":
        assert status == "SUCCEEDED", log_text
    else:
        assert status == "FAILED"
        assert described["attempts"][0]["container"]["exitCode"] == 2
        assert "unrecognized arguments" in log_text


def test_a_job_runnable_past_the_queues_time_limit_is_cancelled(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """JobStateTimeLimitActions: the only slot is busy (no GPU capacity), so the second job waits RUNNABLE
    until the queue's limit (600 s, scaled to 2 s here) cancels it with the action's reason."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AUDIOMIXER_LOCAL_BATCH_TIME_SCALE", "0.002")
    with mock_aws():
        res = create_resources(FIXTURE)
        assert res.batch.time_limits["audiomixer-SeparationJobQueue"][0]["maxTimeSeconds"] == 2.0
        with LocalBatchRunner(res, log_dir=tmp_path / "logs", max_jobs=1, event_targets=[]) as runner:
            busy = _submit(res, tmp_path, "sleep")
            waiting = _submit(res, tmp_path, "ok")
            started = time.monotonic()
            assert runner.wait(waiting, 30) == "FAILED"
            waited = time.monotonic() - started
            (described,) = boto3.client("batch").describe_jobs(jobs=[waiting])["jobs"]
            assert described["statusReason"] == "no capacity for 10 minutes"
            assert described["attempts"] == []  # it never ran
            assert _statuses(runner.events, waiting) == ["SUBMITTED", "RUNNABLE", "FAILED"]
            assert 1.5 < waited < 10, waited
            busy_status = next(j["status"] for j in runner.jobs_summary() if j["jobId"] == busy)
            assert busy_status == "RUNNING"  # a started job is not subject to the RUNNABLE limit
