"""Through the local stack: a Batch state change that BatchEventsFunction fails on every try lands in
BatchEventsDLQ (as EventBridge's DeadLetterConfig does on AWS), and the dead-letter consumer ends the
project `failed` with the job's reason instead of leaving it `separating` for ever."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from polling import wait_for


def test_a_failed_job_whose_event_handling_always_fails_ends_its_project_failed(
    local_stack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from audiomixer.pipeline import batch_events
    from audiomixer.store import keys
    from audiomixer.store.models import Project

    spec = local_stack.res.function("DeadLetterFunction")
    assert any(s.queue == "BatchEventsDLQ" for s in spec.sqs_sources)  # wired from template.yaml
    assert local_stack.res.function("BatchEventsFunction").event_dlq == "BatchEventsDLQ"

    def broken(event: dict[str, Any], **_: Any) -> str:
        raise ConnectionError("DynamoDB is briefly unreachable")

    monkeypatch.setattr(batch_events, "handle", broken)
    project = Project("bedlq", keys.new_id(), name="p", status="separating", stage="separate")
    project.save()
    job_id = boto3.client("batch").submit_job(
        jobName="separate-dlq-test",
        jobQueue=local_stack.res.env["AUDIOMIXER_BATCH_JOB_QUEUE"],
        jobDefinition=local_stack.res.env["AUDIOMIXER_BATCH_JOB_DEFINITION"],
        parameters={"tenant_id": "bedlq", "project_id": project.project_id, "source_key": "x"},
        containerOverrides={"command": ["python", "-c", "raise SystemExit(3)"]},
    )["jobId"]
    assert local_stack.batch.wait(job_id, 60) == "FAILED"

    def failed() -> Project | None:
        project.refresh(consistent_read=True)
        return project if project.status == "failed" else None

    wait_for(failed, 60, "the dead-letter consumer to end the project")
    assert project.stage == "separate"
    assert "separation job failed" in (project.failure_reason or "")
    assert "exit code" in (project.failure_reason or "")
    assert any(d["jobId"] == job_id for d in local_stack.batch.failed_deliveries)
