"""Property-based contract test: schemathesis generates requests from the app's own OpenAPI schema and
checks that nothing is a server error and every response matches the documented status codes and schemas."""

from __future__ import annotations

import os
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from audiomixer.api.app import create_app
from audiomixer.api.deps import TokenBucketLimiter

# Examples per operation: CI runs at least 100 (.ci/run sets it); a local run keeps to a few unless asked.
MAX_EXAMPLES = int(
    os.environ.get("AUDIOMIXER_SCHEMA_EXAMPLES") or (100 if os.environ.get("CI") == "true" else 10)
)

# Settings are read per request, so an app built at import time serves the moto world of each test.
app = create_app(limiter=TokenBucketLimiter(rate=10_000, burst=10_000))
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_schema(case: Any, tenant_a: Any) -> None:
    case.call_and_validate(
        headers=tenant_a.headers,
        checks=[not_a_server_error, status_code_conformance, response_schema_conformance],
    )


def test_schema_documents_the_error_envelope_and_auth() -> None:
    spec = app.openapi()
    assert spec["components"]["schemas"]["ErrorResponse"]["required"] == ["error"]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            if path.startswith("/api/v1"):
                assert {"401", "422", "429"} <= codes, (method, path)
                assert operation.get("security"), (method, path)
            if method == "post" and path.startswith("/api/v1"):
                assert any(p["name"] == "Idempotency-Key" for p in operation.get("parameters", [])), path
