"""The outer ASGI app of the local stack: WebSocket scopes and `/@connections/...` (also
`/{stage}/@connections/...`) go to the local gateway, `GET /_local/status` answers the stack's state, and
everything else goes to the FastAPI app (imported lazily, so the stack can start while it is broken)."""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Callable
from typing import Any

from audiomixer_local import iam
from audiomixer_local.gateway import Receive, Scope, Send, WebSocketGateway

log = logging.getLogger("audiomixer_local.router")

API_APP = "audiomixer.api.app:app"


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
            await app(scope, receive, send)


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
