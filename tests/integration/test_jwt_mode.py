"""JWT mode (JwtIssuer set): the API and WebSocket $connect verify JWTs against the issuer's published keys,
API keys keep working beside them, and the tenant comes only from a claim the operator names (never from a
claim users can write, like Cognito's `custom:tenant`, unless configured). Keys are generated here and
served through the JWKS fetch, so nothing leaves the machine."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from audiomixer import auth

ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Example"
EVENTS = Path(__file__).resolve().parents[1] / "events"
SIGNING = RSAKey.generate_key(2048, parameters={"kid": "k1"})
OTHER = RSAKey.generate_key(2048, parameters={"kid": "k1"})  # same kid, not the issuer's key


def token(key: RSAKey = SIGNING, **claims: Any) -> str:
    body = {"iss": ISSUER, "sub": "user-1", "aud": "audiomixer", "exp": int(time.time()) + 600, **claims}
    return jwt.encode({"alg": "RS256", "kid": "k1"}, {k: v for k, v in body.items() if v is not None}, key)


@pytest.fixture
def jwt_mode(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The issuer configured; its discovery document and keys answered locally. Yields the URLs fetched."""
    from audiomixer import aws as aws_clients

    fetched: list[str] = []
    documents = {
        f"{ISSUER}/.well-known/openid-configuration": {"jwks_uri": f"{ISSUER}/.well-known/jwks.json"},
        f"{ISSUER}/.well-known/jwks.json": KeySet([SIGNING]).as_dict(private=False),
    }

    def fetch(url: str) -> dict[str, Any]:
        fetched.append(url)
        return dict(documents[url])

    monkeypatch.setattr(auth, "_fetch_json", fetch)
    monkeypatch.setenv("AUDIOMIXER_JWT_ISSUER", ISSUER)
    monkeypatch.setenv("AUDIOMIXER_JWT_AUDIENCE", "audiomixer,other-client")
    aws_clients.reset()
    yield fetched
    monkeypatch.undo()
    aws_clients.reset()


def test_a_valid_jwt_names_its_user_and_a_user_writable_tenant_claim_is_ignored(jwt_mode: list[str]) -> None:
    who = auth.principal_from_event(None, f"Bearer {token(**{'custom:tenant': 'someone-else'})}")
    assert who == auth.Principal("user-1", "jwt", "user-1")
    assert jwt_mode == [f"{ISSUER}/.well-known/openid-configuration", f"{ISSUER}/.well-known/jwks.json"]
    auth.principal_from_event(None, f"Bearer {token()}")
    assert len(jwt_mode) == 2  # the keys are read once per sandbox


def test_the_configured_tenant_claim_names_the_tenant(
    jwt_mode: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from audiomixer import aws as aws_clients

    monkeypatch.setenv("AUDIOMIXER_JWT_TENANT_CLAIM", "custom:tenant")
    aws_clients.reset()
    who = auth.principal_from_event(None, f"Bearer {token(**{'custom:tenant': 'Acme'})}")
    assert who.tenant_id == "acme"
    with pytest.raises(auth.AuthError, match="no custom:tenant claim"):
        auth.principal_from_event(None, f"Bearer {token()}")


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (lambda: token(key=OTHER), "invalid token"),  # not signed by the issuer
        (lambda: token(iss="https://evil.example.com"), "invalid token"),
        (lambda: token(exp=int(time.time()) - 60), "invalid token"),
        (lambda: token(aud="another-api"), "audience"),
        (lambda: token(aud=None, client_id="other-client")[:-2] + "xx", "invalid token"),  # tampered
    ],
)
def test_tokens_the_gateway_authorizer_would_refuse_are_refused(
    jwt_mode: list[str], bad: Any, message: str
) -> None:
    with pytest.raises(auth.AuthError, match=message):
        auth.principal_from_event(None, f"Bearer {bad()}")


def test_cognito_access_tokens_match_on_client_id(jwt_mode: list[str]) -> None:
    access = token(aud=None, client_id="other-client", token_use="access")
    assert auth.principal_from_event(None, f"Bearer {access}").tenant_id == "user-1"


def test_api_keys_and_jwts_both_work_on_the_api_and_on_connect(aws: Any, jwt_mode: list[str]) -> None:
    from fastapi.testclient import TestClient

    from audiomixer.api.app import app
    from audiomixer.pipeline import websocket
    from audiomixer.store import keys
    from audiomixer.store.models import Project

    key = auth.create_api_key("user-1")
    project = Project("user-1", keys.new_id(), name="p", status="ready", stage="ready")
    project.save()
    with TestClient(app) as client:
        for credential in (key, token()):
            response = client.get("/api/v1/projects", headers={"Authorization": f"Bearer {credential}"})
            assert response.status_code == 200, response.text
            assert [p["project_id"] for p in response.json()["items"]] == [project.project_id]
        assert client.get("/api/v1/projects", headers={"Authorization": "Bearer a.b.c"}).status_code == 401
        # $connect: a browser cannot send headers, so either credential buys a single-use ticket for the URL.
        tickets = []
        for credential in (key, token()):
            response = client.post("/api/v1/ws-tickets", headers={"Authorization": f"Bearer {credential}"})
            assert response.status_code == 201, response.text
            tickets.append(response.json()["ticket"])
    for ticket in tickets:
        event = json.loads((EVENTS / "ws_connect.json").read_text())
        event["queryStringParameters"] = {"ticket": ticket, "project_id": project.project_id}
        assert websocket.connect(event)["statusCode"] == 200
    # A JWT sent as a header (non-browser clients) is accepted on $connect as well.
    event = json.loads((EVENTS / "ws_connect.json").read_text())
    event["queryStringParameters"] = {"project_id": project.project_id}
    event["headers"] = {**(event.get("headers") or {}), "Authorization": f"Bearer {token()}"}
    assert websocket.connect(event)["statusCode"] == 200
