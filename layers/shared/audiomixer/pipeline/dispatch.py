"""Dispatch: turn one separation message into exactly one AWS Batch job."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pynamodb.exceptions import DoesNotExist

from audiomixer import aws, notify
from audiomixer.messages import SeparateMessage
from audiomixer.pipeline.failures import after_retries, fail_stored
from audiomixer.pipeline.sqs import parse_message
from audiomixer.settings import Settings, get_settings
from audiomixer.store import keys
from audiomixer.store.models import Project, ProjectStatus
from audiomixer.store.status import transition

if TYPE_CHECKING:
    from mypy_boto3_batch import BatchClient

logger = Logger(service="audiomixer", child=True)

ACTIVE_JOB_STATES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED")


def job_name(project_id: str) -> str:
    return f"separate-{project_id}"


def process(record: SQSRecord) -> None:
    message = parse_message(record, SeparateMessage)
    if message is not None:
        dispatch(message)


def on_final_failure(record: SQSRecord, exc: Exception) -> None:
    message = parse_message(record, SeparateMessage)
    if message is not None:
        reason = after_retries("starting separation", exc, "try again later")
        fail_stored(Project, message.tenant_id, message.project_id, reason, "separate")


def _existing_job(batch: BatchClient, settings: Settings, name: str) -> str | None:
    """A job already submitted for this project by an earlier delivery whose bookkeeping was lost."""
    try:
        pages = batch.get_paginator("list_jobs").paginate(
            jobQueue=settings.batch_job_queue, filters=[{"name": "JOB_NAME", "values": [name]}]
        )
        for page in pages:
            for job in page.get("jobSummaryList", []):
                if job.get("jobName") == name and job.get("status") in ACTIVE_JOB_STATES:
                    return str(job["jobId"])
    except Exception as exc:  # listing is a best-effort guard; the conditional write below is the real one
        logger.warning("could not list batch jobs", extra={"error": str(exc)})
    return None


def dispatch(
    message: SeparateMessage, *, batch: BatchClient | None = None, settings: Settings | None = None
) -> str:
    settings = settings or get_settings()
    batch = batch or aws.client("batch")
    try:
        project = Project.get(message.tenant_id, message.project_id, consistent_read=True)
    except DoesNotExist:
        return "deleted"  # deleted while queued: finish as a no-op
    if project.status != ProjectStatus.QUEUED or project.batch_job_id:
        notify.announce("project", project)  # redelivered: the job exists, only re-announce
        return "duplicate"
    if project.stage != "separate":
        # Ingest sets this stage before it asks for separation; anything earlier has no source yet.
        logger.warning(
            "separation requested before ingest finished", extra={"project_id": project.project_id}
        )
        return "early"
    name = job_name(project.project_id)
    job_id = _existing_job(batch, settings, name)
    if job_id is None:
        # Throttling (TooManyRequestsException) is retried by botocore's standard retry mode; if it
        # still fails the exception returns the message to the queue for a later attempt.
        response = batch.submit_job(
            jobName=name,
            jobQueue=settings.batch_job_queue,
            jobDefinition=settings.batch_job_definition,
            parameters={
                "tenant_id": project.tenant_id,
                "project_id": project.project_id,
                "source_key": keys.project_source(project.tenant_id, project.project_id),
            },
        )
        job_id = str(response["jobId"])
    if not transition(project, ProjectStatus.SEPARATING, stage="separate", batch_job_id=job_id, progress=0):
        if project.batch_job_id != job_id:
            # Another delivery won the race with its own job: stop ours so only one runs.
            batch.terminate_job(jobId=job_id, reason="duplicate separation job for the same project")
        return "duplicate"
    notify.announce("project", project)
    logger.info("separation job submitted", extra={"project_id": project.project_id, "job_id": job_id})
    return job_id
