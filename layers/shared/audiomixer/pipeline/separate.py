"""The separation Batch job's main: Demucs in restartable chunks (audiomixer.separation), with progress in
DynamoDB and over WebSocket, then the project moves on to analysis.

Exit codes: 0 done (or nothing to do), 2 failed for a reason recorded on the project (no retry helps),
1 an unexpected error (Batch's retry strategy decides; batch_events records the final failure)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from aws_lambda_powertools import Logger
from pynamodb.exceptions import DoesNotExist

from audiomixer import aws, notify
from audiomixer.messages import AnalyseMessage, send
from audiomixer.pipeline.failures import drop_stems, fail, forget
from audiomixer.settings import get_settings
from audiomixer.store import keys
from audiomixer.store.models import Project, ProjectStatus
from audiomixer.store.status import raise_progress, still_exists, transition

logger = Logger(service="audiomixer-separation")

EXIT_OK, EXIT_RETRY, EXIT_FAILED = 0, 1, 2


class ProjectGone(Exception):
    """The project was deleted or failed while its job ran: stop, and keep nothing of it."""

    def __init__(self, status: str) -> None:
        super().__init__(f"project is {status}; separation stopped")
        self.status = status


class _ProgressReporter:
    """Before each chunk (the library calls this between chunks, and before download and upload) checks
    that the project still wants its stems; writes progress at most about once a second, the last chunk
    always."""

    def __init__(self, project: Project, interval_s: float) -> None:
        self.project, self.interval_s, self._last = project, interval_s, 0.0

    def __call__(self, percent: int, message: str = "") -> None:
        # One consistent read per chunk (tens of seconds of audio): a FAILED event or a delete stops the
        # job within one chunk instead of letting it write stems for a project nobody will use.
        if not still_exists(self.project):
            raise ProjectGone("deleted")
        if self.project.status != "separating":
            raise ProjectGone(self.project.status)
        now = time.monotonic()
        if percent < 100 and now - self._last < self.interval_s:
            return
        self._last = now
        # Separation is the first 90 % of the way to `ready`; analysis takes the rest.
        if raise_progress(self.project, min(90, int(percent * 0.9)), ProjectStatus.SEPARATING):
            notify.announce("project", self.project, detail=message or None)


def run(tenant_id: str, project_id: str, source_key: str) -> int:
    from audiomixer.separation import SeparationError, run_separation_job

    settings = get_settings()
    s3 = aws.client("s3")
    try:
        project = Project.get(tenant_id, project_id, consistent_read=True)
    except DoesNotExist:
        logger.info("project deleted before separation ran; removing what is left of it")
        if keys.is_id(project_id) and keys.is_tenant(tenant_id):  # ids we issue: anything else owns nothing
            forget(s3, settings.bucket, keys.project_prefix(tenant_id, project_id))
        return EXIT_OK
    if project.status == ProjectStatus.QUEUED:
        # The job can start before dispatch's bookkeeping lands; the state machine keeps this safe.
        transition(
            project,
            ProjectStatus.SEPARATING,
            stage="separate",
            batch_job_id=os.environ.get("AWS_BATCH_JOB_ID"),
        )
    if project.status == ProjectStatus.FAILED:
        drop_stems(s3, settings.bucket, tenant_id, project_id)
        logger.info("project failed before separation ran; nothing to do")
        return EXIT_OK
    if project.status != ProjectStatus.SEPARATING:
        logger.info("project is past separation", extra={"status": project.status})
        return EXIT_OK
    if source_key != keys.project_source(tenant_id, project_id):
        fail(project, "separation job was given a source that does not belong to the project", "separate")
        return EXIT_FAILED
    # The project's options; a project that chose none gets the deployment's DEMUCS_MODEL, all stems.
    model_name = project.separation_model or settings.demucs_model
    logger.info(
        "separating",
        extra={
            "attempt": os.environ.get("AWS_BATCH_JOB_ATTEMPT", "1"),
            "model": model_name,
            "two_stems": project.two_stems,
        },
    )
    try:
        stem_keys = run_separation_job(
            s3=s3,
            bucket=settings.bucket,
            source_key=source_key,
            stems_prefix=keys.stems_prefix(tenant_id, project_id),
            checkpoint_prefix=keys.checkpoints_prefix(tenant_id, project_id),
            model_name=model_name,
            two_stems=project.two_stems,
            repo=Path(settings.demucs_repo) if settings.demucs_repo else None,
            chunk_s=settings.separation_chunk_s,
            overlap_s=settings.separation_overlap_s,
            on_progress=_ProgressReporter(project, settings.progress_min_interval_s),
        )
    except SeparationError as exc:
        # Bad input or a missing model: retrying cannot help, so record why and stop.
        fail(project, str(exc), "separate")
        drop_stems(s3, settings.bucket, tenant_id, project_id)
        return EXIT_FAILED
    except ProjectGone as gone:
        logger.info("stopping: the project is gone", extra={"status": gone.status})
        if gone.status == "deleted":
            forget(s3, settings.bucket, keys.project_prefix(tenant_id, project_id))
        else:
            drop_stems(s3, settings.bucket, tenant_id, project_id)
        return EXIT_OK
    if not still_exists(project):  # deleted while uploading: its stems must not stay behind
        forget(s3, settings.bucket, keys.project_prefix(tenant_id, project_id))
        return EXIT_OK
    if project.status == "failed":  # failed while uploading (a FAILED event for this job, say)
        drop_stems(s3, settings.bucket, tenant_id, project_id)
        return EXIT_OK
    stems = dict.fromkeys(stem_keys, True)  # the stem set the model gave
    if transition(project, ProjectStatus.ANALYSING, stage="analyse", progress=90, stems=stems):
        send(
            aws.client("sqs"),
            settings.analyse_queue_url,
            AnalyseMessage(tenant_id=tenant_id, kind="project", id=project_id),
        )
        notify.announce("project", project, detail=f"separated into {', '.join(stems)}")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="gpu_batch/entrypoint.py", description="Separate one project's song."
    )
    parser.add_argument("tenant_id")
    parser.add_argument("project_id")
    parser.add_argument("source_key")
    args = parser.parse_args(argv)
    # audiomixer.separation logs with the standard library (chunks computed and resumed per attempt);
    # without a handler those lines never reach the job's log (CloudWatch on AWS, attempt-N.log locally).
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    library = logging.getLogger("audiomixer.separation")
    library.addHandler(handler)
    library.setLevel(logging.INFO)
    try:
        return run(args.tenant_id, args.project_id, args.source_key)
    except Exception:
        logger.exception("separation job crashed; Batch's retry strategy decides what happens next")
        return EXIT_RETRY


if __name__ == "__main__":
    sys.exit(main())
