"""The Lambda entry (functions/api/app.py) with API Gateway HTTP API v2 events, and the API's import
weight (no numpy/librosa/torch on the cold-start path)."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from audiomixer.settings import get_settings

ROOT = Path(__file__).resolve().parents[3]
ENTRY = ROOT / "functions" / "api" / "app.py"


class _Context:
    function_name = "audiomixer-ApiFunction"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:audiomixer-ApiFunction"
    memory_limit_in_mb = 512
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
    log_group_name = "/aws/lambda/audiomixer-ApiFunction"
    log_stream_name = "2026/11/26/[$LATEST]abc"

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


def _load_entry() -> ModuleType:
    spec = importlib.util.spec_from_file_location("functions_api_app_under_test", ENTRY)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _event(
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    claims: dict[str, str] | None = None,
    body: bytes | None = None,
) -> dict[str, Any]:
    request_context: dict[str, Any] = {
        "accountId": "123456789012",
        "apiId": "api",
        "domainName": "api.example.com",
        "domainPrefix": "api",
        "http": {
            "method": method,
            "path": path,
            "protocol": "HTTP/1.1",
            "sourceIp": "1.2.3.4",
            "userAgent": "t",
        },
        "requestId": "req-1",
        "routeKey": "$default",
        "stage": "$default",
        "time": "26/Nov/2026:00:00:00 +0000",
        "timeEpoch": 1795000000000,
    }
    if claims is not None:
        request_context["authorizer"] = {"jwt": {"claims": claims, "scopes": None}}
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"host": "api.example.com", **(headers or {})},
        "requestContext": request_context,
        "isBase64Encoded": False,
    }
    if body is not None:
        event["body"] = base64.b64encode(body).decode()
        event["isBase64Encoded"] = True
    return event


@pytest.fixture
def entry(api_env: Any) -> ModuleType:
    return _load_entry()


def test_health_through_lambda(entry: ModuleType) -> None:
    result = entry.handler(_event("GET", "/health"), _Context())
    assert result["statusCode"] == 200
    assert json.loads(result["body"]) == {"status": "ok"}


def test_jwt_claims_from_the_authorizer_pick_the_tenant(
    entry: ModuleType, make_project: Any, tenant_a: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = make_project(tenant_a, status="queued", stems={})
    # The operator names the tenant claim (AUDIOMIXER_JWT_TENANT_CLAIM); a user-writable one is never assumed.
    monkeypatch.setenv("AUDIOMIXER_JWT_TENANT_CLAIM", "custom:tenant")
    get_settings.cache_clear()
    try:
        event = _event("GET", "/api/v1/projects", claims={"sub": "user-1", "custom:tenant": "tenant-a"})
        result = entry.handler(event, _Context())
        assert result["statusCode"] == 200, result
        assert [p["project_id"] for p in json.loads(result["body"])["items"]] == [project.project_id]
        other = entry.handler(
            _event("GET", "/api/v1/projects", claims={"sub": "someone-else", "custom:tenant": "tenant-b"}),
            _Context(),
        )
        assert json.loads(other["body"])["items"] == []
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def test_no_claims_and_no_key_is_401(entry: ModuleType) -> None:
    result = entry.handler(_event("GET", "/api/v1/projects", headers={"x-tenant": "tenant-a"}), _Context())
    assert result["statusCode"] == 401
    assert json.loads(result["body"])["error"]["code"] == "unauthorized"


def test_api_key_through_lambda(entry: ModuleType, tenant_a: Any) -> None:
    result = entry.handler(
        _event("GET", "/api/v1/library", headers={"authorization": f"Bearer {tenant_a.key}"}), _Context()
    )
    assert result["statusCode"] == 200
    assert json.loads(result["body"]) == {"items": [], "next_cursor": None}


def test_idempotency_uses_the_lambda_context(entry: ModuleType, tenant_a: Any, make_project: Any) -> None:
    project = make_project(tenant_a, status="ready")
    body = json.dumps({"project_id": project.project_id}).encode()
    headers = {
        "authorization": f"Bearer {tenant_a.key}",
        "content-type": "application/json",
        "idempotency-key": "lambda-1",
        "content-length": str(len(body)),
    }
    first = entry.handler(_event("POST", "/api/v1/mix", headers=headers, body=body), _Context())
    second = entry.handler(_event("POST", "/api/v1/mix", headers=headers, body=body), _Context())
    assert first["statusCode"] == second["statusCode"] == 202
    assert json.loads(first["body"]) == json.loads(second["body"])


# The entry loaded in a child interpreter as Lambda loads it, as `module` (this interpreter's modules
# would hide what an import loads).
_LOAD_ENTRY = (
    f"spec = importlib.util.spec_from_file_location('entry', {str(ENTRY)!r})\n"
    "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
)


def _in_child(code: str, *args: str, timeout: int = 60) -> str:
    """What `code` prints in a fresh interpreter, given `args` as sys.argv[1:]."""
    result = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout, check=True
    )
    return result.stdout.strip()


def test_importing_the_api_does_not_load_audio_libraries() -> None:
    code = (
        "import sys, audiomixer.api.app\n"
        "heavy = sorted(m for m in ('numpy', 'scipy', 'librosa', 'torch', 'soundfile') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    heavy = _in_child(code)
    assert heavy == "", f"the API imported {heavy}"


def test_the_lambda_entry_does_not_load_audio_libraries() -> None:
    code = "import importlib.util, sys\n" + _LOAD_ENTRY + "print('numpy' in sys.modules)\n"
    assert _in_child(code) == "False"


def test_the_lambda_entry_builds_no_aws_client_at_import() -> None:
    """A cold start pays for what the import builds: AWS clients (botocore service models) and the
    DynamoDB connections come on first use, and nothing loads that only other functions need."""
    code = (
        "import importlib.util, sys, gc\n"
        "import botocore.client, botocore.loaders\n"
        "loaded = []\n"
        "load = botocore.loaders.Loader.load_service_model\n"
        "def recorded(self, name, *args, **kwargs):\n"
        "    loaded.append(name)\n"
        "    return load(self, name, *args, **kwargs)\n"
        "botocore.loaders.Loader.load_service_model = recorded\n"
        + _LOAD_ENTRY
        + "clients = [o for o in gc.get_objects() if isinstance(o, botocore.client.BaseClient)]\n"
        "unneeded = ('numpy', 'soundfile', 'av', 'librosa', 'pydantic_settings', 'joserfc')\n"
        "print(loaded, len(clients), sorted(m for m in unneeded if m in sys.modules))\n"
    )
    assert _in_child(code) == "[] 0 []"


def test_the_first_request_builds_no_route_again() -> None:
    """Each route is built once, at import: a router joined with `include_router` was built again (its
    dependencies and pydantic adapters) by the first request that reached it, on top of the cold start."""
    from audiomixer_tools.bench.cold_start import CHILD_CONTEXT, first_request_event

    code = (
        "import importlib.util, json, sys\n"
        "import fastapi.utils\n"
        "built = []\n"
        "create = fastapi.utils.create_model_field\n"
        "def recorded(name, *args, **kwargs):\n"
        "    built.append(name)\n"
        "    return create(name, *args, **kwargs)\n"
        "fastapi.utils.create_model_field = recorded\n"
        "import fastapi.routing, fastapi.dependencies.utils\n"
        "fastapi.routing.create_model_field = fastapi.dependencies.utils.create_model_field = recorded\n"
        + _LOAD_ENTRY
        + "at_import = len(built)\n"
        + CHILD_CONTEXT
        + "for path in ('/api/v1/projects', '/api/v1/mixes', '/api/v1/library'):\n"
        "    event = json.loads(sys.argv[1].replace('/api/v1/projects', path))\n"
        "    assert module.handler(event, _Context())['statusCode'] == 401\n"
        "print(at_import, built[at_import:])\n"
    )
    event = json.dumps(first_request_event("GET", "/api/v1/projects"))
    at_import, rebuilt = _in_child(code, event).split(maxsplit=1)
    assert int(at_import) > 20, "the routes' fields are built at import"
    assert rebuilt.strip() == "[]"


def test_every_zip_handler_and_the_api_run_without_pydantic_v1() -> None:
    """The dependency layer leaves pydantic.v1 out (layers/core_deps/Makefile): each zip handler imports,
    the API builds the same OpenAPI document and answers, with `import pydantic.v1` failing as it does there."""
    from audiomixer_tools.bench.cold_start import CHILD_CONTEXT, first_request_event, zip_functions

    handlers = {lid: str(path) for lid, (path, _) in zip_functions(ROOT / "template.yaml").items()}
    code = (
        "import hashlib, importlib.util, json, sys\n"
        "sys.modules['pydantic.v1'] = None\n"
        "handlers = json.loads(sys.argv[1])\n"
        "modules = {}\n"
        "for lid, path in handlers.items():\n"
        "    spec = importlib.util.spec_from_file_location(lid, path)\n"
        "    modules[lid] = importlib.util.module_from_spec(spec); spec.loader.exec_module(modules[lid])\n"
        "api = modules['ApiFunction']\n"
        "document = json.dumps(api.app.openapi(), sort_keys=True).encode()\n"
        + CHILD_CONTEXT
        + "status = api.handler(json.loads(sys.argv[2]), _Context())['statusCode']\n"
        "print(sys.modules['pydantic.v1'], status, hashlib.sha256(document).hexdigest())\n"
    )
    event = json.dumps(first_request_event("GET", "/api/v1/projects"))
    printed = _in_child(code, json.dumps(handlers), event, timeout=120)
    from audiomixer.api.app import app

    expected = hashlib.sha256(json.dumps(app.openapi(), sort_keys=True).encode()).hexdigest()
    assert printed.split() == ["None", "401", expected]
