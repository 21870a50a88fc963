"""Lambda entry of the WebSocket `$connect` route: see audiomixer.pipeline.websocket."""

from typing import Any

from audiomixer.pipeline import websocket
from aws_lambda_powertools import Logger

logger = Logger(service="audiomixer")


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return websocket.connect(event)
