"""Retries through moto and the local IAM check: a failed delivery comes back after a short, growing delay
(ChangeMessageVisibility, allowed by the stage's SQSPollerPolicy) instead of the queue's visibility timeout,
and the dead-letter consumer ends the job of a message that used up its deliveries as `failed`."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest

from audiomixer_local import functions, iam
from audiomixer_local.pollers import build_pollers, sqs_record


def _receive(queue_url: str) -> list[dict[str, Any]]:
    response = boto3.client("sqs").receive_message(
        QueueUrl=queue_url, AttributeNames=["All"], MessageAttributeNames=["All"], WaitTimeSeconds=0
    )
    return list(response.get("Messages") or [])


def _wait_visible(queue_url: str, timeout_s: float) -> tuple[list[dict[str, Any]], float]:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        messages = _receive(queue_url)
        if messages:
            return messages, time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"the message did not come back within {timeout_s} s")


def test_a_failed_delivery_comes_back_after_a_growing_backoff(
    aws: Any, monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

    from audiomixer import aws as aws_clients
    from audiomixer.pipeline.sqs import sqs_handler

    monkeypatch.setenv("AUDIOMIXER_RETRY_BACKOFF_S", "[1, 3]")
    aws_clients.reset()
    queue = aws.queues["AnalyseQueue"]
    assert queue.visibility_timeout >= 600  # what a failure cost before: minutes to an hour
    boto3.client("sqs").send_message(QueueUrl=queue.url, MessageBody="{}")

    def transient(record: Any) -> None:
        raise ConnectionError("a dependency is briefly unreachable")

    handler = sqs_handler("Test", transient, lambda record, exc: None)
    principal = aws.function("AnalyseFunction").principal  # the stage's own policies

    def deliver(messages: list[dict[str, Any]]) -> None:
        event = {"Records": [sqs_record(m, queue.arn, aws.region) for m in messages]}
        # A batch whose every record failed raises (Lambda then leaves the whole batch to its retry).
        with iam.acting_as(principal), pytest.raises(BatchProcessingError):
            handler(event, lambda_context)

    messages = _receive(queue.url)
    deliver(messages)
    messages, first_delay = _wait_visible(queue.url, 10)
    assert 0.5 < first_delay < 2.5, first_delay
    assert messages[0]["Attributes"]["ApproximateReceiveCount"] == "2"
    deliver(messages)
    messages, second_delay = _wait_visible(queue.url, 10)
    assert 2.5 < second_delay < 5, second_delay  # the delay grows with the receive count


def test_an_error_no_retry_can_fix_ends_the_job_at_once(aws: Any, lambda_context: Any) -> None:
    from audiomixer.pipeline.failures import after_retries
    from audiomixer.pipeline.sqs import PermanentError, sqs_handler

    seen: list[str] = []

    def bad_input(record: Any) -> None:
        raise PermanentError("the song has no audible content; upload another file")

    handler = sqs_handler(
        "Test", bad_input, lambda record, exc: seen.append(after_retries("analysis", exc, "-"))
    )
    queue = aws.queues["AnalyseQueue"]
    event = {"Records": [_record(queue, aws.region, "{}")]}  # the first delivery
    assert handler(event, lambda_context) == {"batchItemFailures": []}  # consumed: not retried
    assert seen == ["analysis failed: the song has no audible content; upload another file"]


def _record(queue: Any, region: str, body: str) -> dict[str, Any]:
    message = {
        "MessageId": "m-1",
        "ReceiptHandle": "r-1",
        "Body": body,
        "Attributes": {"ApproximateReceiveCount": "1"},
        "MD5OfBody": "",
    }
    return sqs_record(message, queue.arn, region)


def test_the_dead_letter_consumer_ends_each_kind_of_job_failed(aws: Any) -> None:
    from audiomixer.store import keys
    from audiomixer.store.models import Mix, Project, Sound

    project = Project("dlq", keys.new_id(), name="p", status="queued", stage="separate")
    project.save()
    analysing = Project("dlq", keys.new_id(), name="a", status="analysing", stage="analyse")
    analysing.save()
    sound = Sound("dlq", keys.new_id(), name="s", status="queued", stage="upload")
    sound.save()
    mix = Mix("dlq", keys.new_id(), project_id=project.project_id, status="queued", stage="render")
    mix.save()
    s3_event = {
        "Records": [
            {
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "bucket": {"name": aws.buckets["AudioBucket"]},
                    "object": {"key": keys.upload("dlq", "style-sound", sound.sound_id)},
                },
            }
        ]
    }
    letters = [
        ("SeparateDLQ", {"tenant_id": "dlq", "project_id": project.project_id}),
        ("AnalyseDLQ", {"tenant_id": "dlq", "kind": "project", "id": analysing.project_id}),
        ("IngestDLQ", s3_event),
        ("RenderDLQ", {"tenant_id": "dlq", "mix_id": mix.mix_id}),
    ]
    spec = aws.function("DeadLetterFunction")
    # Wired like every SQS mapping: one poller per dead-letter queue of the template.
    mapped = {p.queue.logical_id for p in build_pollers(aws) if p.function is spec}
    assert mapped == {"IngestDLQ", "SeparateDLQ", "AnalyseDLQ", "RenderDLQ", "BatchEventsDLQ"}
    for _ in range(2):  # a redelivered dead letter changes nothing the second time
        for queue, body in letters:
            event = {"Records": [_record(aws.queues[queue], aws.region, json.dumps(body))]}
            assert functions.invoke(spec, event).result == {"batchItemFailures": []}
    for item, stage in ((project, "separate"), (analysing, "analyse"), (sound, "ingest"), (mix, "render")):
        item.refresh(consistent_read=True)
        assert item.status == "failed", item
        assert item.stage == stage
        assert "timed out, ran out of memory or crashed" in item.failure_reason


def test_a_dead_letter_of_a_finished_job_leaves_it_alone(aws: Any) -> None:
    from audiomixer.store import keys
    from audiomixer.store.models import Project

    done = Project("dlq", keys.new_id(), name="done", status="ready", stage="ready", progress=100)
    done.save()
    body = json.dumps({"tenant_id": "dlq", "kind": "project", "id": done.project_id})
    event = {"Records": [_record(aws.queues["AnalyseDLQ"], aws.region, body)]}
    functions.invoke(aws.function("DeadLetterFunction"), event)
    done.refresh(consistent_read=True)
    assert (done.status, done.failure_reason) == ("ready", None)


def test_a_dead_lettered_batch_event_ends_a_project_still_waiting_on_it(aws: Any) -> None:
    """BatchEventsDLQ holds raw EventBridge events and Lambda's on-failure records (the event as
    `requestPayload`): a FAILED job fails its project with the job's reason; a SUCCEEDED one only a project
    still `separating`; another job's event leaves the project alone."""
    from audiomixer.store import keys
    from audiomixer.store.models import Project

    def project(status: str, job: str) -> Project:
        item = Project("bdlq", keys.new_id(), name="p", status=status, stage="separate", batch_job_id=job)
        item.save()
        return item

    def event(item: Project, status: str, job: str) -> dict[str, Any]:
        detail = {
            "jobId": job,
            "status": status,
            "statusReason": "Essential container in task exited",
            "parameters": {"tenant_id": "bdlq", "project_id": item.project_id},
            "attempts": [{"container": {"exitCode": 137}}],
        }
        return {"detail-type": "Batch Job State Change", "source": "aws.batch", "detail": detail}

    failed_job = project("separating", "j1")
    succeeded_stuck = project("separating", "j2")
    succeeded_moved_on = project("analysing", "j3")
    stale = project("separating", "j4")
    letters = [
        event(failed_job, "FAILED", "j1"),
        {
            "version": "1.0",
            "requestPayload": event(succeeded_stuck, "SUCCEEDED", "j2"),
            "responsePayload": {},
        },
        event(succeeded_moved_on, "SUCCEEDED", "j3"),
        event(stale, "FAILED", "an-older-job"),
    ]
    spec = aws.function("DeadLetterFunction")
    assert "BatchEventsDLQ" in {p.queue.logical_id for p in build_pollers(aws) if p.function is spec}
    for _ in range(2):  # a redelivered dead letter changes nothing the second time
        for body in letters:
            record = _record(aws.queues["BatchEventsDLQ"], aws.region, json.dumps(body))
            assert functions.invoke(spec, {"Records": [record]}).result == {"batchItemFailures": []}
    for item in (failed_job, succeeded_stuck, succeeded_moved_on, stale):
        item.refresh(consistent_read=True)
    assert failed_job.status == "failed"
    assert failed_job.failure_reason.startswith("separation job failed: Essential container in task exited")
    assert "(exit code 137)" in failed_job.failure_reason
    assert succeeded_stuck.status == "failed"
    assert "checking the separated stems did not finish" in succeeded_stuck.failure_reason
    assert (succeeded_moved_on.status, succeeded_moved_on.failure_reason) == ("analysing", None)
    assert (stale.status, stale.failure_reason) == ("separating", None)
