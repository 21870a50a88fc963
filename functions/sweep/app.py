"""Lambda entry of the periodic sweep (EventBridge schedule): see audiomixer.pipeline.sweep."""

from typing import Any

from aws_lambda_powertools import Logger

from audiomixer.pipeline import sweep

logger = Logger(service="audiomixer")


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    report = sweep.run()
    return {"expired_uploads": report.expired_uploads, "orphans_deleted": report.orphans_deleted}
