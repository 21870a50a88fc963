"""Who is calling: API keys (stored only as a peppered HMAC) and JWTs. Shared by the HTTP API and the
WebSocket $connect handler, so both accept both.

JWT claims are trusted when they come from the Lambda event (an API Gateway authorizer verified them; a
client cannot inject them through headers) or when this module verified the bearer token itself against
the issuer's keys (AUDIOMIXER_JWT_ISSUER): signature, issuer, expiry and audience, as API Gateway's JWT
authorizer does. The tenant is the claim AUDIOMIXER_JWT_TENANT_CLAIM names (one users cannot write,
e.g. a Cognito custom attribute left out of every app client's WriteAttributes), else `sub`."""

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
# Asymmetric algorithms only: an issuer publishes public keys; "none" and HMAC are refused.
JWT_ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512"]

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
    _issuer_keys.cache_clear()


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


def principal_from_claims(claims: Mapping[str, Any], tenant_claim: str | None = None) -> Principal:
    """Tenant from the configured tenant claim (`tenant_claim`, else settings.jwt_tenant_claim), which the
    token must carry; without one configured, from `sub` (a user-writable claim is never trusted)."""
    name = tenant_claim if tenant_claim is not None else get_settings().jwt_tenant_claim
    subject = claims.get("sub")
    tenant = claims.get(name) if name else subject
    if not isinstance(tenant, str) or not tenant:
        raise AuthError(f"token carries no {name or 'sub'} claim")
    try:
        tenant_id = check_tenant(tenant.strip().lower())
    except ValueError:
        raise AuthError("token's tenant is not a valid tenant id") from None
    return Principal(tenant_id=tenant_id, method="jwt", subject=str(subject) if subject else None)


@lru_cache(maxsize=4)
def _issuer_keys(issuer: str) -> dict[str, Any]:
    """The issuer's JSON Web Key Set, via its OpenID discovery document (read once per sandbox)."""
    base = issuer.rstrip("/")
    try:
        jwks_uri = str(_fetch_json(f"{base}/.well-known/openid-configuration")["jwks_uri"])
    except (OSError, ValueError, KeyError):
        jwks_uri = f"{base}/.well-known/jwks.json"
    return _fetch_json(jwks_uri)


def _fetch_json(url: str) -> dict[str, Any]:
    import json
    import urllib.request

    if not url.startswith("https://"):
        raise ValueError(f"refusing to fetch keys over a non-https URL: {url}")
    with urllib.request.urlopen(url, timeout=5) as response:
        data = json.loads(response.read())
    if not isinstance(data, dict):
        raise ValueError(f"{url} did not answer a JSON object")
    return data


def _looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and not token.startswith(KEY_PREFIX)


def verify_jwt(token: str) -> dict[str, Any]:
    """Claims of a JWT signed by the configured issuer, valid now and meant for this API. Raises AuthError."""
    from joserfc import jwt
    from joserfc.errors import JoseError
    from joserfc.jwk import KeySet

    settings = get_settings()
    issuer = settings.jwt_issuer
    if not issuer:
        raise AuthError("invalid API key")
    try:
        keys = KeySet.import_key_set(_issuer_keys(issuer))  # type: ignore[arg-type]
        decoded = jwt.decode(token, keys, algorithms=JWT_ALGORITHMS)
        jwt.JWTClaimsRegistry(iss={"essential": True, "value": issuer}, exp={"essential": True}).validate(
            decoded.claims
        )
    except (JoseError, ValueError, OSError) as exc:
        raise AuthError(f"invalid token ({type(exc).__name__})") from None
    claims = dict(decoded.claims)
    audiences = {a.strip() for a in settings.jwt_audience.split(",") if a.strip()}
    # API Gateway's JWT authorizer accepts `aud` (ID tokens) or `client_id` (Cognito access tokens).
    presented = claims.get("aud")
    presented_set = set(presented if isinstance(presented, list) else [presented]) | {claims.get("client_id")}
    if audiences and not audiences & presented_set:
        raise AuthError("token is not meant for this API (audience)")
    return claims


def principal_from_event(event: Mapping[str, Any] | None, authorization: str | None) -> Principal:
    """JWT claims from the event win; otherwise the bearer token: an API key, or a JWT verified here when
    an issuer is configured. Raises AuthError."""
    claims = claims_from_event(event)
    if claims is not None:
        return principal_from_claims(claims)
    token = bearer_token(authorization)
    if token is None:
        raise AuthError("missing bearer token")
    if get_settings().jwt_issuer and _looks_like_jwt(token):
        return principal_from_claims(verify_jwt(token))
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
