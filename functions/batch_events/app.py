"""Lambda entry for AWS Batch job state changes (EventBridge): see audiomixer.pipeline.batch_events."""

from typing import Any

from aws_lambda_powertools import Logger

from audiomixer.pipeline import batch_events

logger = Logger(service="audiomixer")


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, str]:
    return {"result": batch_events.handle(event)}
