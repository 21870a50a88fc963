"""Authentication (API keys, JWT claims from the event), CORS and the per-tenant burst limiter."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest
from fastapi.testclient import TestClient

from audiomixer import auth, aws
from audiomixer.api.app import create_app
from audiomixer.api.deps import BURST_CAPACITY, BURST_RATE_PER_S, TokenBucketLimiter
from audiomixer.settings import get_settings
from audiomixer.store.models import ApiKey

PROTECTED = [
    ("GET", "/api/v1/projects"),
    ("GET", "/api/v1/projects/" + "a" * 32),
    ("GET", "/api/v1/projects/" + "a" * 32 + "/status"),
    ("DELETE", "/api/v1/projects/" + "a" * 32),
    ("GET", "/api/v1/library"),
    ("GET", "/api/v1/mix/" + "a" * 32),
    ("GET", "/api/v1/mixes"),
    ("POST", "/api/v1/mix"),
    ("POST", "/api/v1/uploads"),
    ("POST", "/api/v1/upload/base-track"),
]


def test_api_key_is_stored_only_as_peppered_hash(api_env: Any) -> None:
    key = auth.create_api_key("acme", label="ci")
    assert key.startswith("am_") and len(key) == 46
    rows = list(ApiKey.scan())
    assert len(rows) == 1
    expected = hmac.new(b"test-pepper", key.encode(), hashlib.sha256).hexdigest()
    assert rows[0].key_hash == expected
    assert key not in str(rows[0].attribute_values)
    assert (rows[0].tenant_id, rows[0].label) == ("acme", "ci")
    assert auth.authenticate(key) == auth.Principal("acme", "api_key")


def test_create_api_key_rejects_bad_tenant(api_env: Any) -> None:
    with pytest.raises(ValueError):
        auth.create_api_key("Not A Tenant")


@pytest.mark.parametrize(
    "token", ["", "am_", "am_" + "x" * 43, "sk_" + "x" * 43, "eyJhbGciOiJub25lIn0.eyJ0ZW5hbnQiOiJhY21lIn0."]
)
def test_authenticate_rejects_unknown_tokens(api_env: Any, token: str) -> None:
    with pytest.raises(auth.AuthError):
        auth.authenticate(token)


def test_revoked_key_is_refused(api_env: Any) -> None:
    key = auth.create_api_key("acme")
    assert auth.revoke_api_key(key)
    with pytest.raises(auth.AuthError, match="revoked"):
        auth.authenticate(key)
    assert not auth.revoke_api_key("am_" + "y" * 43)


def test_key_made_under_another_pepper_is_refused(api_env: Any, configure: Any) -> None:
    key = auth.create_api_key("acme")
    configure(api_key_pepper="a-different-pepper")
    with pytest.raises(auth.AuthError):
        auth.authenticate(key)


def test_pepper_comes_from_ssm_once_when_configured(api_env: Any, configure: Any) -> None:
    ssm = aws.client("ssm")
    ssm.put_parameter(Name="/audiomixer/test/pepper", Value="ssm-pepper", Type="SecureString")
    configure(api_key_pepper_parameter="/audiomixer/test/pepper")
    key = auth.create_api_key("acme")
    stored = next(iter(ApiKey.scan())).key_hash
    assert stored == hmac.new(b"ssm-pepper", key.encode(), hashlib.sha256).hexdigest()
    # Read once and cached: a later change in SSM does not reach a warm process.
    ssm.put_parameter(Name="/audiomixer/test/pepper", Value="rotated", Type="SecureString", Overwrite=True)
    assert auth.authenticate(key).tenant_id == "acme"


def test_claims_from_http_api_v2_event(monkeypatch: pytest.MonkeyPatch) -> None:
    event = {"requestContext": {"authorizer": {"jwt": {"claims": {"sub": "u-1", "custom:tenant": "Acme"}}}}}
    # custom:tenant is user-writable in Cognito by default: ignored unless the operator names it.
    assert auth.principal_from_event(event, None) == auth.Principal("u-1", "jwt", "u-1")
    monkeypatch.setenv("AUDIOMIXER_JWT_TENANT_CLAIM", "custom:tenant")
    get_settings.cache_clear()
    try:
        assert auth.principal_from_event(event, None) == auth.Principal("acme", "jwt", "u-1")
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def test_claims_use_the_named_tenant_claim_else_sub() -> None:
    assert (
        auth.principal_from_claims({"sub": "abc-123", "tenant": "t1"}, tenant_claim="tenant").tenant_id
        == "t1"
    )
    assert auth.principal_from_claims({"sub": "abc-123", "tenant": "t1"}).tenant_id == "abc-123"
    with pytest.raises(auth.AuthError, match="no tenant claim"):
        auth.principal_from_claims({"sub": "abc-123"}, tenant_claim="tenant")
    with pytest.raises(auth.AuthError):
        auth.principal_from_claims({"sub": "has spaces!"})
    with pytest.raises(auth.AuthError):
        auth.principal_from_claims({"email": "a@b.c"})


def test_claims_outside_an_authorizer_are_ignored(api_env: Any) -> None:
    forged = {"headers": {"x-claims": '{"tenant": "acme"}'}, "requestContext": {"authorizer": None}}
    with pytest.raises(auth.AuthError, match="missing bearer"):
        auth.principal_from_event(forged, None)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer am_" + "z" * 43},
        {"Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJ0ZW5hbnQiOiJ0ZW5hbnQtYSJ9.c2ln"},
        {"X-Tenant": "tenant-a", "X-Amzn-Oidc-Data": "forged"},
    ],
    ids=["none", "empty", "basic", "unknown-key", "forged-jwt", "forged-headers"],
)
def test_unauthenticated_requests_are_401(client: TestClient, tenant_a: Any, headers: dict[str, str]) -> None:
    for method, path in PROTECTED:
        response = client.request(method, path, headers=headers)
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"]["code"] == "unauthorized"


def test_cors_allows_listed_origin(client: TestClient, tenant_a: Any) -> None:
    preflight = client.options(
        "/api/v1/projects",
        headers={
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,idempotency-key,content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert "idempotency-key" in preflight.headers["access-control-allow-headers"].lower()
    response = client.get("/api/v1/projects", headers={**tenant_a.headers, "Origin": "http://localhost:3000"})
    assert response.headers["access-control-allow-origin"] == "http://localhost:3000"


def test_cors_refuses_other_origins(client: TestClient, tenant_a: Any) -> None:
    preflight = client.options(
        "/api/v1/projects",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert preflight.status_code == 400
    assert "access-control-allow-origin" not in preflight.headers
    response = client.get("/api/v1/projects", headers={**tenant_a.headers, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in response.headers


def test_cors_origins_come_from_settings(api_env: Any, configure: Any) -> None:
    configure(cors_allow_origins='["https://app.example"]')
    with TestClient(create_app()) as c:
        ok = c.options(
            "/health", headers={"Origin": "https://app.example", "Access-Control-Request-Method": "GET"}
        )
        assert ok.headers["access-control-allow-origin"] == "https://app.example"
        refused = c.options(
            "/health", headers={"Origin": "http://localhost:3000", "Access-Control-Request-Method": "GET"}
        )
        assert refused.status_code == 400


def test_token_bucket_refills_at_its_rate() -> None:
    now = [100.0]
    bucket = TokenBucketLimiter(rate=2.0, burst=3, clock=lambda: now[0])
    assert [bucket.acquire("t") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.acquire("t") == pytest.approx(0.5)
    assert bucket.acquire("other") == 0.0
    now[0] += 0.5
    assert bucket.acquire("t") == 0.0
    assert bucket.acquire("t") > 0
    now[0] += 60
    assert [bucket.acquire("t") for _ in range(3)] == [0.0, 0.0, 0.0]  # never more than the burst
    assert bucket.acquire("t") > 0


def test_default_burst_numbers() -> None:
    assert (BURST_RATE_PER_S, BURST_CAPACITY) == (20.0, 40)
    bucket = TokenBucketLimiter(clock=lambda: 0.0)
    assert all(bucket.acquire("t") == 0 for _ in range(40))
    assert bucket.acquire("t") > 0


def test_burst_over_the_limit_is_429_per_tenant(api_env: Any, tenant_a: Any, tenant_b: Any) -> None:
    app = create_app(limiter=TokenBucketLimiter(rate=0.01, burst=3))
    with TestClient(app) as c:
        for _ in range(3):
            assert c.get("/api/v1/projects", headers=tenant_a.headers).status_code == 200
        limited = c.get("/api/v1/projects", headers=tenant_a.headers)
        assert limited.status_code == 429
        assert limited.json()["error"]["code"] == "rate_limited"
        assert int(limited.headers["retry-after"]) >= 1
        assert c.get("/api/v1/projects", headers=tenant_b.headers).status_code == 200
        assert c.get("/health").status_code == 200
