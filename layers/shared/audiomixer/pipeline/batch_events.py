"""Batch job state changes (EventBridge): a FAILED job, or a SUCCEEDED one without its stems, ends the
project as `failed` with a reason a person can act on."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from pynamodb.exceptions import DoesNotExist

from audiomixer import aws
from audiomixer.pipeline.failures import drop_stems, fail, forget
from audiomixer.settings import get_settings
from audiomixer.stem_sets import project_stems
from audiomixer.store import blobs, keys
from audiomixer.store.models import Project

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

logger = Logger(service="audiomixer", child=True)


def failure_reason(detail: dict[str, Any]) -> str:
    reason = str(detail.get("statusReason") or "").strip()
    exit_code = (detail.get("container") or {}).get("exitCode")
    attempts = detail.get("attempts") or []
    if attempts:
        last = attempts[-1].get("container") or {}
        exit_code = last.get("exitCode", exit_code)
        reason = reason or str(last.get("reason") or "")
    text = "separation job failed"
    if reason:
        text += f": {reason}"
    if exit_code is not None:
        text += f" (exit code {exit_code})"
    return text + f" after {max(len(attempts), 1)} attempt(s); upload the song again or contact support"


def handle(event: dict[str, Any], *, s3: S3Client | None = None) -> str:
    detail = event.get("detail") or {}
    params = detail.get("parameters") or {}
    tenant_id, project_id = params.get("tenant_id"), params.get("project_id")
    status = detail.get("status")
    if not tenant_id or not project_id:
        logger.warning("batch event without our parameters", extra={"job_id": detail.get("jobId")})
        return "ignored"
    settings = get_settings()
    s3 = s3 or aws.client("s3")
    try:
        project = Project.get(tenant_id, project_id, consistent_read=True)
    except DoesNotExist:
        # The job may have written after the delete removed the prefix: nothing of it may stay.
        if keys.is_id(project_id) and keys.is_tenant(tenant_id):  # ids we issue: anything else owns nothing
            forget(s3, settings.bucket, keys.project_prefix(tenant_id, project_id))
        return "deleted"
    if project.batch_job_id and detail.get("jobId") and project.batch_job_id != detail["jobId"]:
        return "other-job"  # a stale or duplicate job: only the recorded one speaks for the project
    if status == "FAILED":
        failed = fail(project, failure_reason(detail), "separate")
        if project.status == "failed":
            drop_stems(s3, settings.bucket, tenant_id, project_id)
        return "failed" if failed else "unchanged"
    if status == "SUCCEEDED":
        missing = [
            s
            for s in project_stems(project, settings.demucs_model)
            if not blobs.exists(s3, settings.bucket, keys.stem(tenant_id, project_id, s))
        ]
        if missing:
            reason = (
                f"separation job finished but stems are missing: {', '.join(missing)}; upload the song again"
            )
            if fail(project, reason, "separate"):
                drop_stems(s3, settings.bucket, tenant_id, project_id)
                return "failed"
        return "ok"
    return "ignored"
