"""WebSocket tickets: what a browser puts in the `$connect` URL instead of its API key."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from audiomixer import auth
from audiomixer.api import deps, errors, idempotency
from audiomixer.api.schemas import WsTicket
from audiomixer.auth import Principal

router = APIRouter(prefix="/api/v1", tags=["websocket"], responses=errors.API_RESPONSES)


@router.post(
    "/ws-tickets",
    status_code=201,
    response_model=WsTicket,
    summary="Get a short-lived, single-use ticket for the WebSocket URL (?ticket=...)",
)
def create_ws_ticket(
    request: Request,
    principal: Principal = Depends(deps.principal),
    idempotency_key: str | None = idempotency.IdempotencyKey,
) -> JSONResponse:
    """Browsers cannot set headers on a WebSocket, so its credential travels in the URL, where it ends up
    in logs: put this ticket there, never the API key. It is valid for `expires_in` seconds and for one
    connection: `ws://HOST/ws/project/{id}?ticket=TICKET` locally, `WebSocketUrl?project_id=ID&ticket=TICKET`
    on AWS.

    `curl -X POST -H "Authorization: Bearer $KEY" $API/api/v1/ws-tickets`
    """

    def work() -> tuple[int, dict[str, Any]]:
        ticket, ttl = auth.issue_ws_ticket(principal.tenant_id)
        return 201, WsTicket(ticket=ticket, expires_in=ttl).model_dump()

    return idempotency.run(request, principal.tenant_id, idempotency_key, idempotency.fingerprint(""), work)
