"""`audiomixer bench cold-start`: the import time of each zip function's handler (what a Lambda cold start
pays before the first event), beside a bare `import fastapi, boto3, mangum, pydantic` measured in the same
run. Each import runs in a fresh interpreter, several times; the medians are compared. The API function's
goal is at most 1.2x the bare imports (it must not pull numpy, the audio stack or anything heavy)."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

API_GOAL = 1.2
BASELINE = "import fastapi, boto3, mangum, pydantic"
# Timed inside the child, so interpreter start-up (the same for every function) is left out.
_TIMED = (
    "import importlib.util, sys, time\n"
    "started = time.perf_counter()\n"
    "{body}\n"
    "print(time.perf_counter() - started)\n"
)
_LOAD_HANDLER = (
    "spec = importlib.util.spec_from_file_location('app', {path!r})\n"
    "module = importlib.util.module_from_spec(spec)\n"
    "spec.loader.exec_module(module)\n"
    "assert callable(getattr(module, {attr!r}))"
)


def zip_functions(template: Path) -> dict[str, tuple[Path, str]]:
    """Logical id -> (handler file, attribute) of each zip (Runtime/Handler) function of the template."""
    from audiomixer_local.template import load

    data = load(template)
    out = {}
    for lid, resource in (data.get("Resources") or {}).items():
        props = resource.get("Properties") or {}
        if resource.get("Type") != "AWS::Serverless::Function" or props.get("PackageType") == "Image":
            continue
        module, _, attr = str(props["Handler"]).rpartition(".")
        out[lid] = (template.parent / str(props["CodeUri"]) / f"{module.replace('.', '/')}.py", attr)
    return out


def time_import(body: str, env: dict[str, str], cwd: Path) -> float:
    result = subprocess.run(
        [sys.executable, "-c", _TIMED.format(body=body)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip().splitlines()[-1] if result.stderr else "import failed")
    return float(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="audiomixer bench cold-start", description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=7, help="fresh interpreters per import (median taken)")
    p.add_argument("--template", type=Path, default=None, help="template.yaml (default: the repository's)")
    p.add_argument("--json", action="store_true", help="print the medians as JSON as well")
    p.add_argument("--check", action="store_true", help=f"exit 1 when the API function exceeds {API_GOAL}x")
    args = p.parse_args(argv)

    from audiomixer_local.stack import find_template

    template = find_template(args.template)
    functions = zip_functions(template)
    layer = template.parent / "layers" / "shared"
    # What Lambda gives a zip function: the layer on the path, a region, no metrics output to flush.
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(layer), os.environ.get("PYTHONPATH", "")])),
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "POWERTOOLS_METRICS_DISABLED": "true",
    }
    bodies = {"bare imports": BASELINE}
    for lid, (path, attr) in functions.items():
        bodies[lid] = _LOAD_HANDLER.format(path=str(path), attr=attr)
    for body in bodies.values():  # warm the OS page cache once, so the first timed run is not an outlier
        time_import(body, env, template.parent)
    samples: dict[str, list[float]] = {name: [] for name in bodies}
    for _ in range(max(1, args.repeats)):  # interleaved, so a noisy moment hits every import alike
        for name, body in bodies.items():
            samples[name].append(time_import(body, env, template.parent))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    base = medians["bare imports"]
    print(f"cold-start bench: handler import in a fresh interpreter, median of {args.repeats} runs")
    print(f"  {'bare imports':<22} {base:7.3f} s   1.00x   ({BASELINE})")
    api_ratio = None
    for name in functions:
        ratio = medians[name] / base
        note = ""
        if name == "ApiFunction":
            api_ratio = ratio
            note = f"   ({'meets' if ratio <= API_GOAL else 'MISSES'} goal <= {API_GOAL:g}x)"
        print(f"  {name:<22} {medians[name]:7.3f} s   {ratio:4.2f}x{note}")
    if args.json:
        print(json.dumps({"median_s": medians, "ratio": {k: v / base for k, v in medians.items()}}))
    if args.check and api_ratio is not None and api_ratio > API_GOAL:
        return 1
    return 0
