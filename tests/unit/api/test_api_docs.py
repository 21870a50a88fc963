"""The interactive docs work offline and explain: /docs and /redoc reference only assets the API serves
itself (no CDN, no web fonts), those assets are served, and the schema gives every operation a
description and an example, every field and parameter a description, and fixed values as enums."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from audiomixer.api.app import create_app
from audiomixer.settings import STEMS


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(create_app())


def _references(html: str) -> list[str]:
    return re.findall(r"""(?:src|href|url)\s*[=:(]\s*['"]([^'"]+)['"]""", html)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_use_only_local_assets(client: TestClient, page: str) -> None:
    response = client.get(page)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    refs = _references(response.text)
    assert any(ref.endswith(".js") for ref in refs), refs
    for ref in refs:
        assert ref.startswith("/") and not ref.startswith("//"), f"{page} loads {ref} from elsewhere"
        assert "googleapis" not in ref and "cdn" not in ref
        if ref.endswith((".js", ".css", ".png")):
            asset = client.get(ref)
            assert asset.status_code == 200 and len(asset.content) > 1000, ref
    assert "http://" not in response.text.replace("http://www.w3.org", "")
    assert "https://" not in response.text


def test_docs_assets_are_the_real_libraries(client: TestClient) -> None:
    assert b"SwaggerUIBundle" in client.get("/docs-assets/swagger-ui-bundle.js").content
    assert b"Redoc" in client.get("/docs-assets/redoc.standalone.js").content


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m, p, op) for p, item in schema["paths"].items() for m, op in item.items()]


def _has_example(schema: dict[str, Any], content: dict[str, Any]) -> bool:
    ref = content.get("schema", {}).get("$ref", "")
    model = schema["components"]["schemas"].get(ref.rsplit("/", 1)[-1], {})
    return bool(content.get("example") or content.get("examples") or model.get("examples"))


def test_every_operation_has_a_description_and_an_example(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    operations = _operations(schema)
    assert len(operations) >= 17
    for method, path, op in operations:
        where = f"{method.upper()} {path}"
        assert len(op.get("description", "")) > 20, where
        bodies = [c for c in op.get("requestBody", {}).get("content", {}).values()]
        responses = [
            c
            for code, r in op["responses"].items()
            if code.startswith("2")
            for c in r.get("content", {}).values()
        ]
        no_content = all(code in ("204", "307") for code in op["responses"] if code.startswith(("2", "3")))
        if no_content:
            assert "curl " in op["description"], f"{where}: no example command"
        else:
            assert any(_has_example(schema, c) for c in bodies + responses), f"{where}: no example"


def test_every_field_and_parameter_is_described(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    missing = [
        f"{model}.{field}"
        for model, body in schema["components"]["schemas"].items()
        for field, prop in body.get("properties", {}).items()
        if not prop.get("description")
    ]
    assert missing == []
    for method, path, op in _operations(schema):
        for param in op.get("parameters", []):
            assert param.get("description"), f"{method} {path} {param['name']}"


def test_fixed_values_are_enums(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    stem = next(
        p
        for p in schema["paths"]["/api/v1/projects/{project_id}/stems/{stem}"]["get"]["parameters"]
        if p["name"] == "stem"
    )
    assert stem["schema"]["enum"] == list(STEMS)
    settings = schema["components"]["schemas"]["MixSettings"]["properties"]
    assert set(settings["output_format"]["enum"]) == {"wav", "flac", "mp3"}


def test_error_responses_refer_to_the_envelope_exactly_as_a_response_model_would() -> None:
    """The error responses are written by reference (no pydantic adapter per route and code on a cold
    start): the document must read as it does when FastAPI writes `responses={code: {"model": ...}}`."""
    import json

    from fastapi import FastAPI

    from audiomixer.api import errors

    reference = FastAPI()

    described = errors.responses(404)[404]["description"]

    @reference.get("/thing", responses={404: {"model": errors.ErrorResponse, "description": described}})
    def thing() -> None: ...

    expected = reference.openapi()
    components = expected["components"]["schemas"]
    written = errors.component_schemas()
    assert json.dumps(written) == json.dumps({name: components[name] for name in written})
    assert set(written) == {"ErrorResponse", "ErrorBody"}
    assert errors.responses(404)[404] == expected["paths"]["/thing"]["get"]["responses"]["404"]
    assert all("model" not in r for r in [*errors.COMMON_RESPONSES.values(), *errors.SERVER_ERROR.values()])
