"""`audiomixer bench cold-start` measures every zip function of the template (no timing asserted here)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from audiomixer_tools.bench.cold_start import (
    _FIRST_REQUEST,
    _LOAD_HANDLER,
    FIRST_REQUEST,
    build_shared_layer,
    first_request_event,
    time_child,
    time_import,
    zip_functions,
)
from audiomixer_tools.cli import BENCHES

ROOT = Path(__file__).resolve().parents[2]


def test_the_bench_finds_each_zip_handler_and_times_an_import_in_a_fresh_interpreter() -> None:
    assert BENCHES["cold-start"] == "audiomixer_tools.bench.cold_start:main"
    functions = zip_functions(ROOT / "template.yaml")
    assert {"ApiFunction", "DispatchFunction", "BatchEventsFunction", "DeadLetterFunction"} <= set(functions)
    assert not {"IngestFunction", "AnalyseFunction", "RenderFunction"} & set(functions)  # images
    for path, attr in functions.values():
        assert path.is_file() and attr == "handler", path
    seconds = time_import("import json", dict(os.environ), ROOT)
    assert 0 <= seconds < 5


def test_the_api_function_answers_its_first_request_from_the_layer_as_built(tmp_path: Path) -> None:
    """The bench imports the handler from the layer `sam build` makes, then sends the first request; a
    handler that imports but cannot answer fails the bench."""
    layer = build_shared_layer(ROOT / "template.yaml", tmp_path)
    assert (layer / "audiomixer" / "api" / "__pycache__" / "app.cpython-311.pyc").is_file()
    env = {
        **os.environ,
        "PYTHONPATH": str(layer),
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    handler, attr = zip_functions(ROOT / "template.yaml")["ApiFunction"]
    load = _LOAD_HANDLER.format(path=str(handler), attr=attr)
    load += f"\nassert sys.modules['audiomixer.api.app'].__file__.startswith({str(layer)!r})"
    method, path, status = FIRST_REQUEST
    request = _FIRST_REQUEST.format(event=json.dumps(first_request_event(method, path)), status=status)
    import_s, request_s = time_child(load, env, ROOT, then=request)
    assert 0 < import_s < 30 and 0 < request_s < 30
    wrong = _FIRST_REQUEST.format(event=json.dumps(first_request_event(method, path)), status=200)
    with pytest.raises(RuntimeError, match="AssertionError"):
        time_child(load, env, ROOT, then=wrong)
