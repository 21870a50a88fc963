"""Who is calling: API keys (stored only as a peppered HMAC) and JWT claims that API Gateway's authorizer
has already verified. Shared by the HTTP API and the WebSocket $connect handler.

Claims are trusted only when they come from the Lambda event (API Gateway puts them there after
verifying the token); a client cannot inject them through headers."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from pynamodb.exceptions import DoesNotExist

from audiomixer.settings import get_settings
from audiomixer.store.keys import check_tenant

KEY_PREFIX = "am_"
# token_urlsafe(32) is 43 characters; anything else cannot be one of our keys.
_KEY_BODY_LENGTH = 43
TENANT_CLAIMS = ("custom:tenant", "tenant")

Method = Literal["api_key", "jwt"]


class AuthError(Exception):
    """The caller could not be authenticated; the message is safe to show."""


@dataclass(frozen=True)
class Principal:
    tenant_id: str
    method: Method
    subject: str | None = None


@lru_cache(maxsize=4)
def _pepper_from_ssm(parameter_name: str) -> str:
    from audiomixer import aws

    response = aws.client("ssm").get_parameter(Name=parameter_name, WithDecryption=True)
    return str(response["Parameter"]["Value"])


def pepper() -> str:
    """The HMAC pepper: from SSM when a parameter name is configured (read once, cached), else settings."""
    settings = get_settings()
    if settings.api_key_pepper_parameter:
        return _pepper_from_ssm(settings.api_key_pepper_parameter)
    return settings.api_key_pepper


def reset_cache() -> None:
    _pepper_from_ssm.cache_clear()


def hash_api_key(key: str) -> str:
    return hmac.new(pepper().encode(), key.encode(), hashlib.sha256).hexdigest()


def create_api_key(tenant_id: str, label: str | None = None) -> str:
    """Create a key for `tenant_id` and return it; only its hash is stored, so show it once."""
    from audiomixer.store.models import ApiKey

    check_tenant(tenant_id)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    ApiKey(hash_api_key(key), tenant_id=tenant_id, label=label).save(
        condition=ApiKey.key_hash.does_not_exist()
    )
    return key


def revoke_api_key(key: str) -> bool:
    """Mark a key revoked; False when it does not exist."""
    from audiomixer.store.models import ApiKey

    try:
        item = ApiKey.get(hash_api_key(key))
    except DoesNotExist:
        return False
    item.update(actions=[ApiKey.revoked.set(True)])
    return True


def _looks_like_key(token: str) -> bool:
    return token.startswith(KEY_PREFIX) and len(token) == len(KEY_PREFIX) + _KEY_BODY_LENGTH


def authenticate(token: str) -> Principal:
    """The principal an API key belongs to, or AuthError."""
    from audiomixer.store.models import ApiKey

    token = token.strip()
    if not _looks_like_key(token):  # saves a table read on garbage
        raise AuthError("invalid API key")
    try:
        item = ApiKey.get(hash_api_key(token))
    except DoesNotExist:
        raise AuthError("invalid API key") from None
    if item.revoked:
        raise AuthError("API key revoked")
    return Principal(tenant_id=item.tenant_id, method="api_key")


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header value, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def claims_from_event(event: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Verified JWT claims from an API Gateway event: HTTP API v2 (authorizer.jwt.claims) or a REST /
    WebSocket authorizer that passes claims (authorizer.claims)."""
    if not isinstance(event, Mapping):
        return None
    authorizer = (event.get("requestContext") or {}).get("authorizer")
    if not isinstance(authorizer, Mapping):
        return None
    jwt = authorizer.get("jwt")
    claims = jwt.get("claims") if isinstance(jwt, Mapping) else authorizer.get("claims")
    return dict(claims) if isinstance(claims, Mapping) and claims else None


def principal_from_claims(claims: Mapping[str, Any]) -> Principal:
    """Tenant from `custom:tenant` / `tenant`, falling back to `sub`."""
    subject = claims.get("sub")
    tenant = next((claims[name] for name in TENANT_CLAIMS if claims.get(name)), subject)
    if not isinstance(tenant, str) or not tenant:
        raise AuthError("token carries no tenant")
    try:
        tenant_id = check_tenant(tenant.strip().lower())
    except ValueError:
        raise AuthError("token's tenant is not a valid tenant id") from None
    return Principal(tenant_id=tenant_id, method="jwt", subject=str(subject) if subject else None)


def principal_from_event(event: Mapping[str, Any] | None, authorization: str | None) -> Principal:
    """JWT claims from the event win; otherwise a bearer API key. Raises AuthError."""
    claims = claims_from_event(event)
    if claims is not None:
        return principal_from_claims(claims)
    token = bearer_token(authorization)
    if token is None:
        raise AuthError("missing bearer token")
    return authenticate(token)


# --- WebSocket tickets ---

TICKET_PREFIX = "wst_"


def _ticket_key(ticket: str) -> str:
    return "ticket#" + hashlib.sha256(ticket.encode()).hexdigest()


def issue_ws_ticket(tenant_id: str) -> tuple[str, int]:
    """A new single-use ticket for `tenant_id` and its lifetime in seconds (only its hash is stored)."""
    import time

    from audiomixer.store.models import WsTicket

    ttl = get_settings().ws_ticket_ttl_s
    ticket = TICKET_PREFIX + secrets.token_urlsafe(32)
    WsTicket(_ticket_key(ticket), tenant_id=check_tenant(tenant_id), expires_at=int(time.time()) + ttl).save(
        condition=WsTicket.usage_key.does_not_exist()
    )
    return ticket, ttl


def redeem_ws_ticket(ticket: str) -> Principal:
    """The principal a ticket was issued to; the ticket is used up. AuthError if it is unknown, expired or
    already used (of two connections racing with one ticket, only one wins the conditional delete)."""
    import time

    from pynamodb.exceptions import DeleteError

    from audiomixer.store.models import WsTicket

    ticket = ticket.strip()
    if not ticket.startswith(TICKET_PREFIX) or len(ticket) > 100:
        raise AuthError("invalid WebSocket ticket; get one from POST /api/v1/ws-tickets")
    try:
        item = WsTicket.get(_ticket_key(ticket), consistent_read=True)
    except DoesNotExist:
        raise AuthError("WebSocket ticket unknown or already used; get a new one") from None
    try:
        item.delete(condition=WsTicket.usage_key.exists())
    except DeleteError as exc:
        if exc.cause_response_code != "ConditionalCheckFailedException":
            raise
        raise AuthError("WebSocket ticket already used; get a new one") from None
    if item.expires_at < time.time():  # DynamoDB's TTL removes expired items only eventually
        raise AuthError("WebSocket ticket expired; get a new one right before connecting")
    return Principal(tenant_id=item.tenant_id, method="api_key")
