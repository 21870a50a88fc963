"""The web console served by the API at `/` (assets under /console/), and the two download links it
needs beside the seed's: a stem's analysis and a style sound's audio (both 307 to presigned URLs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from fastapi.testclient import TestClient

from audiomixer import aws
from audiomixer.api.app import console_dir
from audiomixer.settings import get_settings
from audiomixer.store import blobs, keys

REPOSITORY_CONSOLE = Path(__file__).resolve().parents[3] / "web" / "console"


def put_object(key: str, body: bytes, content_type: str) -> None:
    blobs.write(aws.client("s3"), get_settings().bucket, key, body, content_type)


def test_console_index_at_root_and_assets_under_console(client: TestClient) -> None:
    index = client.get("/")
    assert index.status_code == 200
    assert index.headers["content-type"].startswith("text/html")
    assert index.text == (REPOSITORY_CONSOLE / "index.html").read_text()
    script = client.get("/console/js/app.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    vendored = "vendor/wavesurfer.js-7.10.1/wavesurfer.esm.js"
    served = client.get(f"/console/{vendored}")
    assert served.status_code == 200 and served.content == (REPOSITORY_CONSOLE / vendored).read_bytes()


def test_console_needs_no_key_but_the_api_does(client: TestClient) -> None:
    assert client.get("/").status_code == 200
    assert client.get("/api/v1/projects").status_code == 401


def test_console_does_not_serve_outside_its_folder(client: TestClient) -> None:
    assert client.get("/console/../../template.yaml").status_code == 404
    assert client.get("/console/%2e%2e/%2e%2e/pyproject.toml").status_code == 404
    assert client.get("/console/nothing-here.js").status_code == 404


def test_console_is_not_in_the_api_schema(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "/" not in paths and not any(p.startswith("/console") for p in paths)


def test_console_folder_from_settings(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<title>elsewhere</title>")
    assert console_dir(str(tmp_path)) == tmp_path
    assert console_dir(None) == REPOSITORY_CONSOLE
    # A configured folder without the console (say /opt/console outside Lambda) is not served.
    assert console_dir(str(tmp_path / "missing")) == REPOSITORY_CONSOLE


def test_console_from_the_configured_folder(configure: Any, tmp_path: Path) -> None:
    from audiomixer.api.app import create_app

    (tmp_path / "index.html").write_text("<title>from the layer</title>")
    configure(web_dir=str(tmp_path))
    with TestClient(create_app()) as client:
        assert client.get("/").text == "<title>from the layer</title>"
        assert client.get("/console/index.html").status_code == 200


def test_console_uses_only_the_public_api() -> None:
    """Every path the console's scripts call is under /api/v1 or the WebSocket's /ws/."""
    sources = "\n".join(p.read_text() for p in (REPOSITORY_CONSOLE / "js").glob("*.js"))
    assert "/_local" not in sources and "@connections" not in sources
    assert 'export const API = "/api/v1";' in sources


def test_analysis_download_redirects_to_the_stems_analysis(
    client: TestClient, tenant_a: Any, make_project: Any
) -> None:
    project = make_project(tenant_a, status="ready")
    analysis = {"onsets_s": [0.5, 1.0], "f0_hz": [110.0], "hop_s": 0.01}
    key = keys.stem_analysis("tenant-a", project.project_id, "bass")
    put_object(key, json.dumps(analysis).encode(), "application/json")
    response = client.get(f"/api/v1/projects/{project.project_id}/analysis/bass", headers=tenant_a.headers)
    assert response.status_code == 307
    location = urlparse(response.headers["location"])
    assert location.path.endswith("/" + key)
    assert "X-Amz-Signature" in parse_qs(location.query)


def test_analysis_download_waits_for_ready(client: TestClient, tenant_a: Any, make_project: Any) -> None:
    project = make_project(tenant_a, status="analysing", stems={"drums": True})
    response = client.get(f"/api/v1/projects/{project.project_id}/analysis/drums", headers=tenant_a.headers)
    assert response.status_code == 409
    assert "not there yet" in response.json()["error"]["message"]


@pytest.mark.parametrize("stem", ["kazoo", "..%2fsource"])
def test_analysis_download_unknown_stem_is_404(
    client: TestClient, tenant_a: Any, make_project: Any, stem: str
) -> None:
    project = make_project(tenant_a, status="ready")
    response = client.get(f"/api/v1/projects/{project.project_id}/analysis/{stem}", headers=tenant_a.headers)
    assert response.status_code == 404


def test_analysis_download_across_tenants_is_404(
    client: TestClient, tenant_a: Any, tenant_b: Any, make_project: Any
) -> None:
    project = make_project(tenant_a, status="ready")
    response = client.get(f"/api/v1/projects/{project.project_id}/analysis/bass", headers=tenant_b.headers)
    assert response.status_code == 404


def test_sound_audio_redirects_to_the_analysed_sound(
    client: TestClient, tenant_a: Any, make_sound: Any
) -> None:
    sound = make_sound(tenant_a, status="ready")
    key = keys.sound_audio("tenant-a", sound.sound_id)
    put_object(key, b"fLaC-sound", "audio/flac")
    response = client.get(f"/api/v1/library/{sound.sound_id}/audio", headers=tenant_a.headers)
    assert response.status_code == 307
    location = urlparse(response.headers["location"])
    assert location.path.endswith("/" + key)
    assert "attachment" in parse_qs(location.query)["response-content-disposition"][0]


def test_sound_audio_not_ready_is_409_and_foreign_is_404(
    client: TestClient, tenant_a: Any, tenant_b: Any, make_sound: Any
) -> None:
    sound = make_sound(tenant_a, status="analysing")
    response = client.get(f"/api/v1/library/{sound.sound_id}/audio", headers=tenant_a.headers)
    assert response.status_code == 409
    assert response.json()["error"]["message"] == "sound is analysing, not ready"
    ready = make_sound(tenant_a, status="ready")
    assert client.get(f"/api/v1/library/{ready.sound_id}/audio", headers=tenant_b.headers).status_code == 404


def test_console_through_the_lambda_entry_from_the_layer_folder(configure: Any, tmp_path: Path) -> None:
    """As deployed: ConsoleLayer unpacks web/ under /opt, the API function reads AUDIOMIXER_WEB_DIR."""
    import importlib.util
    import shutil

    layer = tmp_path / "opt" / "console"
    shutil.copytree(REPOSITORY_CONSOLE, layer)
    (layer / "index.html").write_text((REPOSITORY_CONSOLE / "index.html").read_text() + "<!-- layer -->")
    configure(web_dir=str(layer))
    import audiomixer.api.app as api_app

    importlib.reload(api_app)  # the module-level app reads the settings when it is built
    try:
        entry_path = Path(__file__).resolve().parents[3] / "functions" / "api" / "app.py"
        spec = importlib.util.spec_from_file_location("functions_api_app_console_test", entry_path)
        assert spec and spec.loader
        entry = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(entry)

        def get(path: str) -> dict[str, Any]:
            event = {
                "version": "2.0",
                "routeKey": f"GET {path}",
                "rawPath": path,
                "rawQueryString": "",
                "headers": {"host": "api.example.com"},
                "requestContext": {
                    "accountId": "123456789012",
                    "apiId": "api",
                    "domainName": "api.example.com",
                    "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1", "sourceIp": "1.2.3.4"},
                    "requestId": "req-1",
                    "routeKey": f"GET {path}",
                    "stage": "$default",
                    "timeEpoch": 1795000000000,
                },
                "isBase64Encoded": False,
            }
            context = type(
                "Context",
                (),
                {
                    "function_name": "api",
                    "function_version": "$LATEST",
                    "invoked_function_arn": "arn:aws:lambda:us-east-1:123456789012:function:api",
                    "memory_limit_in_mb": 512,
                    "aws_request_id": "r",
                    "log_group_name": "/aws/lambda/api",
                    "log_stream_name": "s",
                    "get_remaining_time_in_millis": lambda self: 29_000,
                },
            )()
            result: dict[str, Any] = entry.handler(event, context)
            return result

        index = get("/")
        assert index["statusCode"] == 200 and index["body"].endswith("<!-- layer -->")
        script = get("/console/js/ws.js")
        assert script["statusCode"] == 200 and "export function wsUrl" in script["body"]
    finally:
        configure(web_dir="")
        importlib.reload(api_app)
