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
    build_deps_layer,
    build_shared_layer,
    console_folder,
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


def test_the_api_finds_its_console_where_the_console_layer_puts_it() -> None:
    assert (console_folder(ROOT / "template.yaml") / "index.html").is_file()


def test_an_isolated_child_imports_only_from_its_path_and_the_standard_library(tmp_path: Path) -> None:
    """Lambda has no development site-packages: with site=False the child sees PYTHONPATH and the
    standard library only, so a dev-only package (awscrt from aws-sam-cli) cannot slip into a figure."""
    (tmp_path / "only_here.py").write_text("VALUE = 1\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    probe = "import only_here, json\nassert not [p for p in sys.path if 'site-packages' in p], sys.path"
    assert time_import(probe, env, ROOT, site=False) >= 0
    with pytest.raises(RuntimeError, match="AssertionError"):
        time_import(probe, env, ROOT, site=True)
    with pytest.raises(RuntimeError, match="ModuleNotFoundError"):
        time_import("import pytest", env, ROOT, site=False)


def _deps_template(tmp_path: Path, makefile: str) -> Path:
    content = tmp_path / "deps"
    content.mkdir(exist_ok=True)
    (content / "Makefile").write_text(makefile)
    (content / "requirements.txt").write_text("somepackage==1.0\n")
    template = tmp_path / "template.yaml"
    template.write_text(
        "Resources:\n  CoreDepsLayer:\n    Type: AWS::Serverless::LayerVersion\n"
        "    Properties:\n      ContentUri: deps/\n"
    )
    return template


def test_the_dependency_layer_is_built_once_per_content_of_its_folder(tmp_path: Path) -> None:
    builds = tmp_path / "builds.log"
    template = _deps_template(
        tmp_path,
        "build-CoreDepsLayer:\n"
        f"\techo built >> {builds}\n"
        "\tmkdir -p $(ARTIFACTS_DIR)/python && cp requirements.txt $(ARTIFACTS_DIR)/python/\n",
    )
    cache = tmp_path / "cache"
    first, why_not = build_deps_layer(template, cache)
    assert first is not None and why_not == ""
    assert (first / "requirements.txt").read_text() == "somepackage==1.0\n"
    assert build_deps_layer(template, cache) == (first, "")
    assert builds.read_text().count("built") == 1
    (tmp_path / "deps" / "requirements.txt").write_text("somepackage==2.0\n")
    second, _ = build_deps_layer(template, cache)
    assert second is not None and second != first and builds.read_text().count("built") == 2
    assert (second / "requirements.txt").read_text() == "somepackage==2.0\n"
    assert not first.exists(), "the layer of the old requirements is not kept"


def test_a_dependency_layer_that_cannot_be_built_says_why_and_leaves_nothing(tmp_path: Path) -> None:
    template = _deps_template(
        tmp_path, "build-CoreDepsLayer:\n\t@echo 'ERROR: No matching distribution found' >&2; exit 1\n"
    )
    cache = tmp_path / "cache"
    layer, why_not = build_deps_layer(template, cache)
    assert layer is None and "No matching distribution" in why_not
    assert list(cache.iterdir()) == []
