"""Lambda entry of the dead-letter consumer (SQS, partial batch failures): see
audiomixer.pipeline.dead_letter."""

from typing import Any

from aws_lambda_powertools import Logger

from audiomixer.pipeline import dead_letter
from audiomixer.pipeline.sqs import sqs_handler

logger = Logger(service="audiomixer")
_handle = sqs_handler("DeadLetter", dead_letter.process, dead_letter.on_final_failure)


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _handle(event, context)
