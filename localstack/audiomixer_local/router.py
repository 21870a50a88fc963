"""The outer ASGI app of the local stack: WebSocket scopes and `/@connections/...` (also
`/{stage}/@connections/...`) go to the local gateway, `GET /_local/status` answers the stack's state, and
everything else goes to the FastAPI app (imported lazily, so the stack can start while it is broken).

Requests to the app pass the size limits of API Gateway's HTTP API and of Lambda's invocation payload
first, with the answers AWS gives (see `gateway_refusal`): the local stack refuses what AWS refuses."""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Callable
from typing import Any

from audiomixer.api.body import read_body, replaying
from audiomixer_local import iam
from audiomixer_local.gateway import Receive, Scope, Send, WebSocketGateway

log = logging.getLogger("audiomixer_local.router")

API_APP = "audiomixer.api.app:app"

# API Gateway HTTP API: request bodies up to 10 MB.
HTTP_API_MAX_BODY = 10 * 1024 * 1024
# Lambda: a synchronous invocation's payload (the whole v2.0 event as JSON) up to 6 MB; API Gateway sends a
# non-text body base64-encoded in it.
LAMBDA_MAX_PAYLOAD = 6 * 1024 * 1024
# The v2.0 event around the body and headers (requestContext, routeKey, ...), measured on real events.
EVENT_ENVELOPE_BYTES = 1200


def lambda_event_bytes(body_bytes: int, headers: list[tuple[bytes, bytes]], path: str, query: bytes) -> int:
    """About how large the API Gateway v2.0 event carrying this request is (body base64-encoded)."""
    header_bytes = sum(len(k) + len(v) + 6 for k, v in headers)  # "k": "v", as JSON
    return 4 * ((body_bytes + 2) // 3) + header_bytes + 2 * len(path) + len(query) + EVENT_ENVELOPE_BYTES


def gateway_refusal(
    body_bytes: int, headers: list[tuple[bytes, bytes]], path: str, query: bytes
) -> tuple[int, bytes, bytes, str | None] | None:
    """(status, content type, body, x-amzn-errortype) of what AWS answers for a request the HTTP API or
    the Lambda invocation cannot carry; None when it reaches the function."""
    if body_bytes > HTTP_API_MAX_BODY:
        return 413, b"text/plain; charset=utf-8", b"HTTP content length exceeded 10485760 bytes.", None
    if lambda_event_bytes(body_bytes, headers, path, query) > LAMBDA_MAX_PAYLOAD:
        return 413, b"application/json", b'{"message":"Request Too Long"}', "BadRequestException"
    return None


def import_app(target: str = API_APP) -> Any:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr or "app")


class LocalRouter:
    def __init__(
        self,
        gateway: WebSocketGateway,
        app: Any = None,
        *,
        app_target: str = API_APP,
        status: Callable[[], dict[str, Any]] | None = None,
        principal: iam.Principal | None = None,
    ) -> None:
        self.gateway = gateway
        # The HTTP API's function: the app's AWS calls are checked against its policies.
        self.principal = principal
        self._app = app
        self._app_error: str | None = None
        self.app_target = app_target
        self.status = status

    def app(self) -> Any:
        if self._app is None and self._app_error is None:
            try:
                self._app = import_app(self.app_target)
            except Exception as exc:  # serve the rest of the stack; say why the API is missing
                log.exception("cannot import %s", self.app_target)
                self._app_error = f"{type(exc).__name__}: {exc}"
        return self._app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            app = self.app()
            if app is not None:
                with iam.acting_as(self.principal):
                    await app(scope, receive, send)
            else:
                await _bare_lifespan(receive, send)
            return
        if kind == "websocket":
            await self.gateway(scope, receive, send)
            return
        path = scope.get("path", "")
        if self.gateway.is_management_path(path):
            await self.gateway(scope, receive, send)
            return
        if path == "/_local/status" and self.status is not None:
            await _send_json(send, 200, self.status())
            return
        app = self.app()
        if app is None:
            await _send_json(
                send,
                503,
                {"error": {"code": "api_unavailable", "message": f"{self.app_target}: {self._app_error}"}},
            )
            return
        # Sync endpoints run in worker threads that copy this context, so they act as the API too.
        with iam.acting_as(self.principal):
            await self._through_gateway_limits(app, scope, receive, send)

    async def _through_gateway_limits(self, app: Any, scope: Scope, receive: Receive, send: Send) -> None:
        headers = list(scope.get("headers") or [])
        path, query = str(scope.get("path", "")), bytes(scope.get("query_string", b""))
        declared = dict(headers).get(b"content-length")
        if declared is not None and declared.isdigit():
            refusal = gateway_refusal(int(declared), headers, path, query)
            if refusal is None:
                await app(scope, receive, send)
            else:
                await _refuse(send, *refusal)
            return
        if scope.get("method") in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await app(scope, receive, send)
            return
        # A body without Content-Length (chunked): API Gateway buffers it, so measure, then replay.
        body, _over_limit = await read_body(receive, HTTP_API_MAX_BODY)
        refusal = gateway_refusal(len(body), headers, path, query)
        if refusal is not None:
            await _refuse(send, *refusal)
            return
        await app(scope, replaying(body, receive), send)


async def _refuse(send: Send, status: int, content_type: bytes, body: bytes, error_type: str | None) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    headers.append((b"connection", b"close"))  # the unread body must not be taken for the next request
    if error_type:
        headers.append((b"x-amzn-errortype", error_type.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _bare_lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _send_json(send: Send, status: int, payload: Any) -> None:
    data = json.dumps(payload, default=str).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": data})
