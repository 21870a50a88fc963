"""WebSocket tickets: what a browser puts in the `$connect` URL instead of its API key."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from audiomixer import auth
from audiomixer.api import deps, idempotency
from audiomixer.api.schemas import WsTicket
from audiomixer.auth import Principal

router = APIRouter(prefix="/api/v1", tags=["websocket"])


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
    def work() -> tuple[int, dict[str, Any]]:
        ticket, ttl = auth.issue_ws_ticket(principal.tenant_id)
        return 201, WsTicket(ticket=ticket, expires_in=ttl).model_dump()

    return idempotency.run(request, principal.tenant_id, idempotency_key, idempotency.fingerprint(""), work)
