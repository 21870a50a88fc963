"""A local WebSocket gateway that behaves like API Gateway's WebSocket API: it invokes the template's
`$connect` / `$disconnect` / route handlers with API Gateway's event shapes and answers the
`@connections` management API (POST/GET/DELETE) that the notifier calls with boto3's
`apigatewaymanagementapi` client (endpoint `http://host:port/{stage}`).

URLs: `/` (or `/{stage}`) with `?project_id=` / `?mix_id=` as on AWS, plus the seed's `/ws/project/{id}`
and `/ws/mix/{id}`, mapped to the same query parameters. Credentials (`ticket`, or locally `token`, in the
query; an `Authorization` header) reach `$connect` exactly as sent, as on AWS. A `$connect` answer with
statusCode >= 400 refuses the handshake with that HTTP status, as API Gateway does.

On AWS, `$connect` cannot post to the connection it is accepting, so clients send {"action": "sync"} after
connecting to get the current state. For the seed's /ws/... URLs the gateway does that on the client's
behalf right after the connection opens, so a late subscriber gets the state at once."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from audiomixer_local import functions
from audiomixer_local.resources import FunctionSpec, WebSocketSpec

log = logging.getLogger("audiomixer_local.gateway")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MANAGEMENT_PATH = re.compile(r"^(?:/(?P<stage>[^/@]+))?/@connections/(?P<id>[^/]+)/?$")
SEED_PATH = re.compile(r"^/ws/(?P<kind>project|mix|sound)/(?P<id>[^/]+)/?$")
MAX_POST_BYTES = 128 * 1024  # API Gateway's WebSocket frame limit


def new_connection_id() -> str:
    # API Gateway ids look like "L0SM9cOFvHcCIhw="; the URL-safe alphabet keeps them path-safe.
    return base64.urlsafe_b64encode(os.urandom(11)).decode()


def _now_ms() -> int:
    return int(time.time() * 1000)


def _request_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _canonical(name: str) -> str:
    return "-".join("WebSocket" if p == "websocket" else p.capitalize() for p in name.split("-"))


@dataclass
class Connection:
    connection_id: str
    send: Send
    connected_at: int
    source_ip: str
    user_agent: str
    headers: dict[str, str]
    query: dict[str, str]
    last_active_at: int = 0
    open: bool = True
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    close_code: int | None = None


class WebSocketGateway:
    """ASGI app for WebSocket scopes and `/@connections/...` HTTP scopes."""

    def __init__(
        self,
        spec: WebSocketSpec | None,
        functions_by_id: dict[str, FunctionSpec],
        *,
        pool: ThreadPoolExecutor | None = None,
        sync_route: str = "sync",
    ) -> None:
        self.spec = spec or WebSocketSpec(api_id="local", stage="prod")
        self.functions = functions_by_id
        self.pool = pool or ThreadPoolExecutor(max_workers=8, thread_name_prefix="ws-handler")
        self.sync_route = sync_route
        self.connections: dict[str, Connection] = {}
        self.message_count = 0

    # --- routing ----------------------------------------------------------------------------------
    @staticmethod
    def is_management_path(path: str) -> bool:
        return MANAGEMENT_PATH.match(path) is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self.websocket(scope, receive, send)
        elif scope["type"] == "http":
            await self.management(scope, receive, send)

    def route_function(self, route_key: str) -> FunctionSpec | None:
        lid = self.spec.routes.get(route_key)
        return self.functions.get(lid) if lid else None

    async def _invoke(self, spec: FunctionSpec, event: dict[str, Any]) -> Any:
        loop = asyncio.get_running_loop()
        outcome = await loop.run_in_executor(self.pool, functions.invoke, spec, event)
        return outcome.result

    def select_route(self, body: str) -> str:
        """Apply RouteSelectionExpression ($request.body.x.y) to a message; $default if it does not apply."""
        expr = self.spec.route_selection_expression
        if not expr.startswith("$request.body."):
            return "$default"
        try:
            value: Any = json.loads(body)
        except (ValueError, TypeError):
            return "$default"
        for part in expr.removeprefix("$request.body.").split("."):
            if not isinstance(value, dict) or part not in value:
                return "$default"
            value = value[part]
        key = str(value) if isinstance(value, (str, int, float)) else "$default"
        return key if key in self.spec.routes else "$default"

    # --- events -----------------------------------------------------------------------------------
    def _context(self, conn: Connection, route_key: str, event_type: str, domain: str) -> dict[str, Any]:
        now = _now_ms()
        request_id = base64.urlsafe_b64encode(os.urandom(6)).decode()
        context: dict[str, Any] = {
            "routeKey": route_key,
            "eventType": event_type,
            "extendedRequestId": request_id,
            "requestTime": _request_time(now),
            "messageDirection": "IN",
            "stage": self.spec.stage,
            "connectedAt": conn.connected_at,
            "requestTimeEpoch": now,
            "identity": {"sourceIp": conn.source_ip, "userAgent": conn.user_agent},
            "requestId": request_id,
            "domainName": domain,
            "connectionId": conn.connection_id,
            "apiId": self.spec.api_id,
        }
        return context

    def connect_event(self, conn: Connection, domain: str) -> dict[str, Any]:
        return {
            "headers": dict(conn.headers),
            "multiValueHeaders": {k: [v] for k, v in conn.headers.items()},
            "queryStringParameters": dict(conn.query) or None,
            "multiValueQueryStringParameters": {k: [v] for k, v in conn.query.items()} or None,
            "requestContext": self._context(conn, "$connect", "CONNECT", domain),
            "isBase64Encoded": False,
        }

    def message_event(
        self, conn: Connection, route_key: str, body: str, domain: str, b64: bool = False
    ) -> dict[str, Any]:
        context = self._context(conn, route_key, "MESSAGE", domain)
        context["messageId"] = base64.urlsafe_b64encode(os.urandom(6)).decode()
        return {"requestContext": context, "body": body, "isBase64Encoded": b64}

    def disconnect_event(self, conn: Connection, domain: str, code: int, reason: str) -> dict[str, Any]:
        context = self._context(conn, "$disconnect", "DISCONNECT", domain)
        context["disconnectStatusCode"] = code
        context["disconnectReason"] = reason
        return {
            "headers": dict(conn.headers),
            "multiValueHeaders": {k: [v] for k, v in conn.headers.items()},
            "requestContext": context,
            "isBase64Encoded": False,
        }

    # --- WebSocket --------------------------------------------------------------------------------
    async def websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        path = scope.get("path", "/")
        query = {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
        seed = SEED_PATH.match(path)
        if seed:
            query.setdefault(f"{seed['kind']}_id", seed["id"])
        elif path.strip("/") not in ("", self.spec.stage):
            await self._deny(scope, send, 404, {"message": "Not Found"})
            return
        headers = {_canonical(k.decode("latin-1")): v.decode("latin-1") for k, v in scope.get("headers", [])}
        client = scope.get("client") or ("127.0.0.1", 0)
        domain = headers.get("Host", "127.0.0.1")
        conn = Connection(
            connection_id=new_connection_id(),
            send=send,
            connected_at=_now_ms(),
            source_ip=str(client[0]),
            user_agent=headers.get("User-Agent", ""),
            headers=headers,
            query=query,
        )
        conn.last_active_at = conn.connected_at
        subprotocol = None
        connect_fn = self.route_function("$connect")
        if connect_fn is not None:
            try:
                result = await self._invoke(connect_fn, self.connect_event(conn, domain))
            except Exception:
                log.exception("$connect handler raised")
                await self._deny(scope, send, 500, {"message": "Internal server error"})
                return
            status = int(result.get("statusCode", 200)) if isinstance(result, dict) else 200
            if status >= 400:
                body = result.get("body") if isinstance(result, dict) else None
                await self._deny(scope, send, status, body if body is not None else {"message": "Forbidden"})
                return
            returned = {str(k).lower(): v for k, v in ((result or {}).get("headers") or {}).items()}
            subprotocol = returned.get("sec-websocket-protocol")
        await send({"type": "websocket.accept", "subprotocol": subprotocol})
        self.connections[conn.connection_id] = conn
        if seed and self.route_function(self.sync_route) is not None:
            await self._route(
                conn, json.dumps({"action": self.sync_route}), domain, route_key=self.sync_route
            )
        code, reason = 1005, "Client-side close frame status not set"
        try:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    code = int(message.get("code") or 1005)
                    reason = str(message.get("reason") or "")
                    break
                if message["type"] == "websocket.receive":
                    conn.last_active_at = _now_ms()
                    self.message_count += 1
                    if message.get("text") is not None:
                        await self._route(conn, message["text"], domain)
                    elif message.get("bytes") is not None:
                        body = base64.b64encode(message["bytes"]).decode()
                        await self._route(conn, body, domain, route_key="$default", b64=True)
        finally:
            conn.open = False
            self.connections.pop(conn.connection_id, None)
            if conn.close_code is not None:
                code, reason = conn.close_code, "Connection closed by the server"
            disconnect_fn = self.route_function("$disconnect")
            if disconnect_fn is not None:
                try:
                    await self._invoke(disconnect_fn, self.disconnect_event(conn, domain, code, reason))
                except Exception:
                    log.exception("$disconnect handler raised")

    async def _route(
        self, conn: Connection, body: str, domain: str, route_key: str | None = None, b64: bool = False
    ) -> None:
        key = route_key or self.select_route(body)
        fn = self.route_function(key)
        if fn is None:
            # What API Gateway answers when no route (and no $default) matches.
            await self._send_text(
                conn,
                json.dumps(
                    {
                        "message": "Forbidden",
                        "connectionId": conn.connection_id,
                        "requestId": str(uuid.uuid4()),
                    }
                ),
            )
            return
        try:
            result = await self._invoke(fn, self.message_event(conn, key, body, domain, b64))
        except Exception:
            log.exception("route %s handler raised", key)
            await self._send_text(
                conn,
                json.dumps(
                    {
                        "message": "Internal server error",
                        "connectionId": conn.connection_id,
                        "requestId": str(uuid.uuid4()),
                    }
                ),
            )
            return
        if key in self.spec.two_way_routes and isinstance(result, dict) and result.get("body") is not None:
            await self._send_text(conn, str(result["body"]))

    async def _send_text(self, conn: Connection, text: str | bytes) -> bool:
        async with conn.lock:
            if not conn.open:
                return False
            try:
                if isinstance(text, bytes):
                    await conn.send({"type": "websocket.send", "bytes": text})
                else:
                    await conn.send({"type": "websocket.send", "text": text})
                return True
            except Exception:  # the client vanished between our check and the write
                conn.open = False
                return False

    async def _deny(self, scope: Scope, send: Send, status: int, body: Any) -> None:
        if "websocket.http.response" in (scope.get("extensions") or {}):
            payload = body if isinstance(body, (str, bytes)) else json.dumps(body)
            data = payload.encode() if isinstance(payload, str) else payload
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(data)).encode()),
                    ],
                }
            )
            await send({"type": "websocket.http.response.body", "body": data})
        else:
            await send({"type": "websocket.close", "code": 4000 + status if 400 <= status < 1000 else 1011})

    # --- @connections management API --------------------------------------------------------------
    async def management(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = MANAGEMENT_PATH.match(scope.get("path", ""))
        if match is None:
            await _json(send, 404, {"message": "Not Found"})
            return
        connection_id = match["id"]
        method = scope.get("method", "GET")
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        conn = self.connections.get(connection_id)
        if conn is None or not conn.open:
            await _json(send, 410, {"message": f"connection {connection_id} is gone"}, error="GoneException")
            return
        if method == "POST":
            if len(body) > MAX_POST_BYTES:
                await _json(send, 413, {"message": "Message too long"}, error="PayloadTooLargeException")
                return
            try:
                payload: str | bytes = body.decode("utf-8")
            except UnicodeDecodeError:
                payload = body
            if not await self._send_text(conn, payload):
                await _json(
                    send, 410, {"message": f"connection {connection_id} is gone"}, error="GoneException"
                )
                return
            await _json(send, 200, None)
        elif method == "GET":
            await _json(
                send,
                200,
                # The wire names (boto3 shows them as ConnectedAt, Identity.SourceIp, ...).
                {
                    "connectedAt": _iso(conn.connected_at),
                    "identity": {"sourceIp": conn.source_ip, "userAgent": conn.user_agent},
                    "lastActiveAt": _iso(conn.last_active_at),
                },
            )
        elif method == "DELETE":
            async with conn.lock:
                if conn.open:
                    conn.open = False
                    conn.close_code = 1000
                    with contextlib.suppress(Exception):  # already gone: nothing to close
                        await conn.send({"type": "websocket.close", "code": 1000})
            await _json(send, 204, None)
        else:
            await _json(send, 403, {"message": "Forbidden"}, error="ForbiddenException")

    def describe(self) -> dict[str, Any]:
        return {
            "api_id": self.spec.api_id,
            "stage": self.spec.stage,
            "routes": dict(self.spec.routes),
            "connections": len(self.connections),
            "messages": self.message_count,
        }


async def _json(send: Send, status: int, payload: Any, error: str | None = None) -> None:
    data = b"" if payload is None else json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    headers.append((b"x-amzn-requestid", str(uuid.uuid4()).encode()))
    if error:
        headers.append((b"x-amzn-errortype", error.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})
