"""The local stack adds the console's origin (the API's own URL) to the template's CORS allow-lists, so
the browser may post presigned forms to the bucket and read stems from it, as on AWS."""

from __future__ import annotations

import json
from pathlib import Path

from audiomixer_local.stack import with_console_origins

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


def test_console_origins_join_the_template_defaults() -> None:
    out = with_console_origins(TEMPLATE, {}, ["http://localhost:8000", "http://127.0.0.1:8000"])
    listed = out["CorsAllowOriginList"].split(",")
    assert listed[-2:] == ["http://localhost:8000", "http://127.0.0.1:8000"]
    assert "http://localhost:5173" in listed  # the template's defaults stay
    assert json.loads(out["CorsAllowOrigins"]) == listed


def test_console_origins_keep_given_parameters_and_no_duplicates() -> None:
    given = {
        "CorsAllowOriginList": "https://app.example,http://127.0.0.1:9000",
        "CorsAllowOrigins": '["https://app.example","http://127.0.0.1:9000"]',
        "WebSocketStageName": "dev",
    }
    out = with_console_origins(TEMPLATE, given, ["http://127.0.0.1:9000"])
    assert out["CorsAllowOriginList"] == "https://app.example,http://127.0.0.1:9000"
    assert json.loads(out["CorsAllowOrigins"]) == ["https://app.example", "http://127.0.0.1:9000"]
    assert out["WebSocketStageName"] == "dev"
