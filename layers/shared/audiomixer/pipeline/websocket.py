"""The WebSocket routes: $connect authenticates and subscribes a connection to one project, mix or
sound it owns; $disconnect forgets it; sync answers with the current state. Events reach subscribers
through notify.publish."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from pynamodb.exceptions import DoesNotExist

from audiomixer import aws, notify
from audiomixer.auth import AuthError, Principal, claims_from_event, principal_from_event, redeem_ws_ticket
from audiomixer.settings import get_settings
from audiomixer.store import keys
from audiomixer.store.models import Connection, Mix, Project, Sound

if TYPE_CHECKING:
    from mypy_boto3_apigatewaymanagementapi import ApiGatewayManagementApiClient

logger = Logger(service="audiomixer", child=True)

TARGETS: dict[str, tuple[notify.Kind, Any]] = {
    "project_id": ("project", Project),
    "mix_id": ("mix", Mix),
    "sound_id": ("sound", Sound),
}


def _response(status: int, message: str) -> dict[str, Any]:
    return {"statusCode": status, "body": json.dumps({"error": {"code": str(status), "message": message}})}


def _lookup(tenant_id: str, kind: notify.Kind, object_id: str) -> Any | None:
    model = {"project": Project, "mix": Mix, "sound": Sound}[kind]
    if not keys.is_id(object_id):
        return None
    try:
        return model.get(tenant_id, object_id, consistent_read=True)
    except DoesNotExist:
        return None


def connect(event: dict[str, Any]) -> dict[str, Any]:
    query = event.get("queryStringParameters") or {}
    try:
        principal = _authenticate(event, query)
    except AuthError as exc:
        return _response(401, str(exc))
    targets = [(name, query[name]) for name in TARGETS if query.get(name)]
    if len(targets) != 1:
        return _response(400, "subscribe to exactly one of project_id, mix_id or sound_id")
    name, object_id = targets[0]
    kind = TARGETS[name][0]
    if _lookup(principal.tenant_id, kind, object_id) is None:
        return _response(404, f"{kind} {object_id} not found")  # someone else's id looks like no id
    context = event.get("requestContext") or {}
    Connection(
        context["connectionId"],
        subscription=notify.subscription(principal.tenant_id, kind, object_id),
        tenant_id=principal.tenant_id,
        endpoint=f"https://{context.get('domainName')}/{context.get('stage')}",
        expires_at=int(time.time()) + get_settings().connection_ttl_s,
    ).save()
    return {"statusCode": 200}


def _authenticate(event: dict[str, Any], query: dict[str, str]) -> Principal:
    """Browsers cannot set headers on a WebSocket, so what proves the caller travels in the URL, where it
    ends up in logs: a short-lived single-use ticket (POST /api/v1/ws-tickets), not the API key. The key
    itself is taken as `?token=` only where `ws_allow_key_in_url` is on (local development)."""
    if query.get("ticket"):
        return redeem_ws_ticket(query["ticket"])
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    authorization = headers.get("authorization")
    if authorization is None and query.get("token"):
        if not get_settings().ws_allow_key_in_url:
            raise AuthError(
                "API keys are not accepted in WebSocket URLs; "
                "connect with ?ticket= from POST /api/v1/ws-tickets"
            )
        authorization = f"Bearer {query['token']}"
    if authorization is None and not claims_from_event(event):
        raise AuthError("connect with ?ticket= from POST /api/v1/ws-tickets")
    return principal_from_event(event, authorization)


def disconnect(event: dict[str, Any]) -> dict[str, Any]:
    connection_id = (event.get("requestContext") or {}).get("connectionId")
    if connection_id:
        try:
            Connection(connection_id).delete()
        except Exception as exc:  # already gone is fine
            logger.info("disconnect: nothing to delete", extra={"error": str(exc)})
    return {"statusCode": 200}


def sync(
    event: dict[str, Any], *, management_client: ApiGatewayManagementApiClient | None = None
) -> dict[str, Any]:
    """Post the subscribed item's current state to the calling connection."""
    connection_id = str((event.get("requestContext") or {}).get("connectionId") or "")
    try:
        connection = Connection.get(connection_id, consistent_read=True)
    except DoesNotExist:
        return _response(410, "unknown connection; reconnect")
    tenant_id, kind, object_id = connection.subscription.split("#", 2)
    item = _lookup(tenant_id, kind, object_id)  # type: ignore[arg-type]
    settings = get_settings()
    client = management_client or aws.management_api(settings.ws_endpoint)
    if item is None:
        payload: dict[str, Any] = {
            "type": kind,
            "id": object_id,
            "status": "deleted",
            "stage": "deleted",
            "progress": 0,
            "detail": f"{kind} was deleted",
            "at": None,
        }
    else:
        payload = notify.event_for(kind, item).model_dump()  # type: ignore[arg-type]
    if not notify.post_to_connection(client, connection_id, payload):
        connection.delete()
    return {"statusCode": 200}
