"""One way for every SQS-triggered stage to process a batch: powertools' BatchProcessor reports partial
failures, so only the records that failed come back; a record that has failed on its last allowed delivery
first records a `failed` status with a reason, so a job never sits stuck behind its DLQ. A failed record
comes back after a short, growing delay (settings.retry_backoff_s, set with ChangeMessageVisibility)
rather than after the queue's visibility timeout."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pydantic import BaseModel, ValidationError

from audiomixer import aws
from audiomixer.settings import get_settings

logger = Logger(service="audiomixer", child=True)
# Embedded-metric-format records on stdout become CloudWatch metrics (the dashboard's stage durations).
metrics = Metrics(namespace="AudioMixer", service="audiomixer")
T = TypeVar("T", bound=BaseModel)


class PermanentError(Exception):
    """Bad input: record it as the job's failure reason and do not retry."""


def receive_count(record: SQSRecord) -> int:
    try:
        return int(record.attributes.approximate_receive_count or 1)
    except (TypeError, ValueError):
        return 1


def backoff_s(attempt: int) -> int:
    """Seconds before the next delivery after failed delivery number `attempt` (1-based)."""
    schedule = get_settings().retry_backoff_s or [0]
    return int(schedule[min(max(attempt, 1), len(schedule)) - 1])


def queue_url(queue_arn: str) -> str | None:
    """The URL of one of the stack's queues (from settings) by its ARN."""
    settings = get_settings()
    name = queue_arn.rsplit(":", 1)[-1]
    urls = (
        settings.ingest_queue_url,
        settings.separate_queue_url,
        settings.analyse_queue_url,
        settings.render_queue_url,
    )
    return next((u for u in urls if u and u.rstrip("/").rsplit("/", 1)[-1] == name), None)


def delay_redelivery(record: SQSRecord, seconds: int, sqs: Any = None) -> bool:
    """Make a failed record visible again in `seconds`; False (logged) when that could not be done, in
    which case it comes back after the queue's own visibility timeout."""
    url = queue_url(record.event_source_arn or "")
    if url is None:
        logger.warning("no queue URL for the record's source", extra={"source": record.event_source_arn})
        return False
    try:
        (sqs or aws.client("sqs")).change_message_visibility(
            QueueUrl=url, ReceiptHandle=record.receipt_handle, VisibilityTimeout=seconds
        )
    except Exception as exc:
        logger.warning(
            "could not delay the retry", extra={"error": str(exc), "message_id": record.message_id}
        )
        return False
    return True


def parse_message(record: SQSRecord, model: type[T]) -> T | None:
    """Parse a message body; a malformed one is logged and dropped (retrying cannot fix it)."""
    try:
        return model.model_validate_json(record.body)
    except ValidationError as exc:
        logger.error("dropping malformed message", extra={"message_id": record.message_id, "error": str(exc)})
        return None


def max_receive_count() -> int:
    limit = get_settings().max_receive_count
    if limit is None:
        raise RuntimeError(
            "AUDIOMIXER_MAX_RECEIVE_COUNT is not set (template.yaml sets it from MaxReceiveCount)"
        )
    return limit


def sqs_handler(
    stage: str,
    process: Callable[[SQSRecord], None],
    on_final_failure: Callable[[SQSRecord, Exception], None],
) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """Build a Lambda handler over `process(record)`. `on_final_failure(record, exc)` runs when a record
    fails for the last time before its queue moves it to the DLQ (it must mark the job failed), and at
    once for a PermanentError, which no retry can fix: that record is then consumed, not retried."""

    def record_handler(record: SQSRecord) -> None:
        started = time.perf_counter()
        try:
            process(record)
            metrics.add_metric(name=f"{stage}Succeeded", unit=MetricUnit.Count, value=1)
            metrics.add_metric(
                name=f"{stage}DurationMs",
                unit=MetricUnit.Milliseconds,
                value=(time.perf_counter() - started) * 1e3,
            )
        except Exception as exc:
            metrics.add_metric(name=f"{stage}Failed", unit=MetricUnit.Count, value=1)
            attempts = receive_count(record)
            permanent = isinstance(exc, PermanentError)
            final = permanent or attempts >= max_receive_count()
            logger.exception(
                "record failed", extra={"message_id": record.message_id, "attempt": attempts, "final": final}
            )
            if final:
                try:
                    on_final_failure(record, exc)
                except Exception:
                    logger.exception("could not record the final failure")
            else:
                delay_redelivery(record, backoff_s(attempts))
            if not permanent:
                raise

    @metrics.log_metrics
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        processor = BatchProcessor(event_type=EventType.SQS)
        response = process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
        return dict(response)

    return handler
