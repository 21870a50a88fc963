"""The consumer of the stages' dead-letter queues: a message that used up its deliveries ends its job as
`failed` with a reason. The stage itself records the failure on its last delivery when it can; this
catches the deliveries that could not (the last one timed out, ran out of memory or lost its sandbox), so
no project, sound or mix is left waiting behind a dead letter. Failing a job that is already terminal
changes nothing, so a message the stage did record is simply consumed.

Messages are told apart by their shape (each stage's message model forbids extra fields; ingest's are
S3 notifications; BatchEventsDLQ holds Batch "Job State Change" events, raw from EventBridge or wrapped
as `requestPayload` by Lambda's on-failure destination), so one function serves every dead-letter queue."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pydantic import BaseModel, ValidationError
from pynamodb.exceptions import DoesNotExist
from pynamodb.models import Model

from audiomixer import notify
from audiomixer.messages import AnalyseMessage, RenderMessage, SeparateMessage
from audiomixer.pipeline.batch_events import failure_reason
from audiomixer.pipeline.failures import fail, fail_stored
from audiomixer.pipeline.ingest import s3_records
from audiomixer.store import keys
from audiomixer.store.models import Mix, Project, Sound
from audiomixer.store.status import update_fields

logger = Logger(service="audiomixer", child=True)


def reason(what: str, advice: str) -> str:
    return (
        f"{what} did not finish: its last attempt timed out, ran out of memory or crashed before it could "
        f"record why; {advice}"
    )


def _parse(body: str, model: type[BaseModel]) -> Any:
    try:
        return model.model_validate_json(body)
    except ValidationError:
        return None


BATCH_EVENT = "Batch Job State Change"


def batch_event(body: str) -> dict[str, Any] | None:
    """The Batch state-change event a BatchEventsDLQ message holds, or None for any other message."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if isinstance(data, dict) and isinstance(data.get("requestPayload"), dict):
        data = data["requestPayload"]  # Lambda's on-failure destination wraps the event it gave up on
    if (
        isinstance(data, dict)
        and data.get("detail-type") == BATCH_EVENT
        and isinstance(data.get("detail"), dict)
    ):
        return data
    return None


def fail_batch_project(event: dict[str, Any]) -> str:
    """End the project of a dead-lettered Batch event `failed`, found from the job's parameters as
    batch_events.handle does; returns what happened. A FAILED job gives its own reason. A SUCCEEDED job
    whose handling never got through (so nobody checked its stems) fails the project only while it is
    still `separating`: one the job already moved on to analysis is left to that stage."""
    detail = event["detail"]
    params = detail.get("parameters") or {}
    tenant_id, project_id = params.get("tenant_id"), params.get("project_id")
    if not tenant_id or not project_id:
        return "ignored"
    try:
        project = Project.get(str(tenant_id), str(project_id), consistent_read=True)
    except DoesNotExist:
        return "deleted"
    if project.batch_job_id and detail.get("jobId") and project.batch_job_id != detail["jobId"]:
        return "other-job"  # only the recorded job speaks for the project
    status = detail.get("status")
    if status == "FAILED":
        return "failed" if fail(project, failure_reason(detail), "separate") else "unchanged"
    if status == "SUCCEEDED":
        text = reason("checking the separated stems", "upload the song again")
        if update_fields(
            project, only_in={"separating"}, status="failed", failure_reason=text, stage="separate"
        ):
            notify.announce("project", project)
            return "failed"
        return "unchanged"
    return "ignored"


def targets(record: SQSRecord) -> list[tuple[type[Model], str, str, str, str]]:
    """(model, tenant id, object id, reason, stage) of each job a dead-lettered message stood for."""
    body = record.body or ""
    if (m := _parse(body, SeparateMessage)) is not None:
        return [
            (Project, m.tenant_id, m.project_id, reason("starting separation", "try again later"), "separate")
        ]
    if (m := _parse(body, AnalyseMessage)) is not None:
        model: type[Model] = Project if m.kind == "project" else Sound
        return [(model, m.tenant_id, m.id, reason("analysis", "upload the audio again"), "analyse")]
    if (m := _parse(body, RenderMessage)) is not None:
        return [(Mix, m.tenant_id, m.mix_id, reason("rendering", "request the mix again"), "render")]
    out: list[tuple[type[Model], str, str, str, str]] = []
    try:
        is_s3 = isinstance(json.loads(body), dict) and "Records" in json.loads(body)
    except ValueError:
        is_s3 = False
    for _bucket, key in s3_records(record) if is_s3 else []:
        try:
            upload = keys.UploadKey.parse(key)
        except ValueError:
            continue
        model = Sound if upload.kind == "style-sound" else Project
        out.append(
            (model, upload.tenant_id, upload.object_id, reason("ingest", "upload the file again"), "ingest")
        )
    return out


def process(record: SQSRecord) -> None:
    if (event := batch_event(record.body or "")) is not None:
        outcome = fail_batch_project(event)
        logger.warning(
            "dead-lettered batch event",
            extra={
                "message_id": record.message_id,
                "job_id": event["detail"].get("jobId"),
                "outcome": outcome,
            },
        )
        return
    found = targets(record)
    if not found:
        logger.error("dead letter for no known job; dropped", extra={"message_id": record.message_id})
        return
    for model, tenant_id, object_id, text, stage in found:
        changed = fail_stored(model, tenant_id, object_id, text, stage)
        logger.warning(
            "dead letter",
            extra={
                "message_id": record.message_id,
                "source": record.event_source_arn,
                "object_id": object_id,
                "marked_failed": changed,
                "body": record.body,
            },
        )


def on_final_failure(record: SQSRecord, exc: Exception) -> None:
    logger.error("could not mark a dead letter's job failed", extra={"message_id": record.message_id})
