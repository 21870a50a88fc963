"""Lambda entry of the WebSocket `$connect` route: see audiomixer.pipeline.websocket."""

from typing import Any

from aws_lambda_powertools import Logger

from audiomixer.pipeline import websocket

logger = Logger(service="audiomixer")


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return websocket.connect(event)
