"""Lambda entry of the render stage (SQS, partial batch failures): see audiomixer.pipeline.render."""

from typing import Any

from aws_lambda_powertools import Logger

from audiomixer.pipeline import render
from audiomixer.pipeline.sqs import sqs_handler

logger = Logger(service="audiomixer")
_handle = sqs_handler("Render", render.process, render.on_final_failure)


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _handle(event, context)
