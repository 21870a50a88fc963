"""Lambda entry of the dispatch stage (SQS, partial batch failures): see audiomixer.pipeline.dispatch."""

from typing import Any

from aws_lambda_powertools import Logger

from audiomixer.pipeline import dispatch
from audiomixer.pipeline.sqs import sqs_handler

logger = Logger(service="audiomixer")
_handle = sqs_handler("Dispatch", dispatch.process, dispatch.on_final_failure)


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _handle(event, context)
