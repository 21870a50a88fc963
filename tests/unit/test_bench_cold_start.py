"""`audiomixer bench cold-start` measures every zip function of the template (no timing asserted here)."""

from __future__ import annotations

import os
from pathlib import Path

from audiomixer_tools.bench.cold_start import time_import, zip_functions
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
