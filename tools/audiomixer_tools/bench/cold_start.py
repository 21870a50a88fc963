"""`audiomixer bench cold-start`: the import time of each zip function's handler (what a Lambda cold start
pays before the first event), beside a bare `import fastapi, boto3, mangum, pydantic` measured in the same
run. Each import runs in a fresh interpreter, several times; the medians are compared. The API function's
goal is at most 1.2x the bare imports (it must not pull numpy, the audio stack or anything heavy).

Both sides import what Lambda would: the layers as `sam build` makes them (layers/shared/Makefile: the
package and its bytecode; layers/core_deps/Makefile: the pinned wheels and their bytecode, built once into
.cache/cold-start/), in an interpreter started with -S so the development environment's site-packages are
left out: they hold packages the layer does not (awscrt, which aws-sam-cli pulls in and botocore then
imports, pyOpenSSL), about 60 ms that inflated the bare baseline. Where the dependency layer cannot be
built (no package registry), the bench says so and falls back to the development environment.

After its import the API function answers a first request (an unauthenticated `GET /api/v1/projects`,
401 with no AWS call): timed beside the import, since a cold start's user waits for both."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

API_GOAL = 1.2
BASELINE = "import fastapi, boto3, mangum, pydantic"
# Timed inside the child, so interpreter start-up (the same for every function) is left out.
_TIMED = (
    "import importlib.util, sys, time\n"
    "started = time.perf_counter()\n"
    "{body}\n"
    "print(time.perf_counter() - started)\n"
    "{then}\n"
)
_LOAD_HANDLER = (
    "spec = importlib.util.spec_from_file_location('app', {path!r})\n"
    "module = importlib.util.module_from_spec(spec)\n"
    "spec.loader.exec_module(module)\n"
    "assert callable(getattr(module, {attr!r}))"
)
# The API function's first request, timed after its import: routing, the auth dependency and the error
# envelope, without credentials so that no AWS call is made.
FIRST_REQUEST = ("GET", "/api/v1/projects", 401)
# A LambdaContext look-alike for a child interpreter's handler calls (`_Context()`).
CHILD_CONTEXT = (
    "class _Context:\n"
    "    function_name, memory_limit_in_mb, aws_request_id = 'api', 512, 'cold-start-bench'\n"
    "    invoked_function_arn = 'arn:aws:lambda:us-east-1:123456789012:function:api'\n"
)
_FIRST_REQUEST = (
    "import json\n" + CHILD_CONTEXT.replace("{", "{{").replace("}", "}}") + "event = json.loads({event!r})\n"
    "started = time.perf_counter()\n"
    "response = module.handler(event, _Context())\n"
    "print(time.perf_counter() - started)\n"
    "assert response['statusCode'] == {status}, response\n"
)


def first_request_event(method: str, path: str) -> dict[str, object]:
    """An API Gateway HTTP API (v2) event without credentials."""
    host = "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com"
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"host": host, "accept": "application/json"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "a1b2c3d4e5",
            "domainName": host,
            "domainPrefix": "a1b2c3d4e5",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.10"},
            "requestId": "cold-start-bench",
            "routeKey": "$default",
            "stage": "$default",
            "time": "30/Nov/2026:12:00:00 +0000",
            "timeEpoch": 1796040000000,
        },
        "isBase64Encoded": False,
    }


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


def console_folder(template: Path) -> Path:
    """Where the API function's AUDIOMIXER_WEB_DIR (/opt/...) lies in the ConsoleLayer's content."""
    from audiomixer_local.template import load

    resources = load(template)["Resources"]
    web_dir = resources["ApiFunction"]["Properties"]["Environment"]["Variables"]["AUDIOMIXER_WEB_DIR"]
    content = template.parent / str(resources["ConsoleLayer"]["Properties"]["ContentUri"])
    return content / Path(str(web_dir)).relative_to("/opt")


def _layer_content(template: Path, layer: str) -> Path:
    """The folder a layer of the template is built from (its ContentUri)."""
    from audiomixer_local.template import load

    return template.parent / str(load(template)["Resources"][layer]["Properties"]["ContentUri"])


def _make_layer(content: Path, layer: str, artifacts: Path, timeout_s: int) -> None:
    """Run the layer's Makefile as `sam build` does for BuildMethod makefile (build-LAYER, ARTIFACTS_DIR),
    with this interpreter as its PYTHON; raises CalledProcessError with make's output on failure."""
    subprocess.run(
        ["make", "-s", "-C", str(content), f"build-{layer}", f"ARTIFACTS_DIR={artifacts}"],
        env={**os.environ, "PYTHON": sys.executable},
        check=True,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def build_shared_layer(template: Path, artifacts: Path) -> Path:
    """The shared layer as `sam build` makes it (its Makefile, BuildMethod makefile) into `artifacts`;
    returns the folder Lambda puts on the path (/opt/python)."""
    _make_layer(_layer_content(template, "SharedLayer"), "SharedLayer", artifacts, timeout_s=300)
    return artifacts / "python"


def build_deps_layer(template: Path, cache: Path) -> tuple[Path | None, str]:
    """The dependency layer (CoreDepsLayer) as `sam build` makes it, built once per content of its folder
    into `cache`: (the folder Lambda puts on the path, ""), or (None, why it could not be built)."""
    content = _layer_content(template, "CoreDepsLayer")
    digest = hashlib.sha256()
    for source in sorted(p for p in content.iterdir() if p.is_file()):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    built = cache / f"core-deps-{digest.hexdigest()[:12]}"
    if (built / "python").is_dir():
        return built / "python", ""
    partial = cache / f"{built.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        _make_layer(content, "CoreDepsLayer", partial, timeout_s=900)
    except (OSError, subprocess.SubprocessError) as exc:
        shutil.rmtree(partial, ignore_errors=True)
        # The tool's own last words (pip's "No matching distribution ..."), not make's "*** Error 1".
        lines = [line for line in (getattr(exc, "stderr", None) or str(exc)).splitlines() if line.strip()]
        said = [line for line in lines if not line.startswith("make")] or lines
        return None, said[-1].strip() if said else type(exc).__name__
    partial.rename(built)
    for stale in cache.glob("core-deps-*"):  # layers of earlier requirements (~90 MB each)
        if stale != built:
            shutil.rmtree(stale, ignore_errors=True)
    return built / "python", ""


def time_import(body: str, env: dict[str, str], cwd: Path, site: bool = True) -> float:
    """Seconds a fresh interpreter spends running `body`."""
    return time_child(body, env, cwd, site=site)[0]


def time_child(body: str, env: dict[str, str], cwd: Path, then: str = "", site: bool = True) -> list[float]:
    """Run `body` timed in a fresh interpreter, then `then`: the seconds of `body`, then any that `then`
    prints. `site=False` starts it with -S: only PYTHONPATH and the standard library are importable."""
    result = subprocess.run(
        [sys.executable, *([] if site else ["-S"]), "-c", _TIMED.format(body=body, then=then)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip().splitlines()[-1] if result.stderr else "import failed")
    return [float(line) for line in result.stdout.split()]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="audiomixer bench cold-start", description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=7, help="fresh interpreters per import (median taken)")
    p.add_argument("--template", type=Path, default=None, help="template.yaml (default: the repository's)")
    p.add_argument("--json", action="store_true", help="print the medians as JSON as well")
    p.add_argument("--check", action="store_true", help=f"exit 1 when the API function exceeds {API_GOAL}x")
    p.add_argument(
        "--dev-packages",
        action="store_true",
        help="import the third-party packages from the development environment instead of the layer "
        "(how earlier notes measured: their extras slow the bare imports)",
    )
    args = p.parse_args(argv)

    from audiomixer_local.stack import find_template

    template = find_template(args.template)
    functions = zip_functions(template)
    if args.dev_packages:
        deps, why_not = None, ""
    else:
        deps, why_not = build_deps_layer(template, template.parent / ".cache" / "cold-start")
    with tempfile.TemporaryDirectory(prefix="cold-start-layer-") as artifacts:
        layer = build_shared_layer(template, Path(artifacts))
        # What Lambda gives a zip function: the layers on the path, a region, no metrics output to flush,
        # and the API its console folder (served from the ConsoleLayer).
        paths = [str(layer), str(deps)] if deps else [str(layer), os.environ.get("PYTHONPATH", "")]
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, paths)),
            "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
            "PYTHONDONTWRITEBYTECODE": "1",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "AUDIOMIXER_WEB_DIR": str(console_folder(template)),
        }
        site = deps is None
        method, path, status = FIRST_REQUEST
        first_request = _FIRST_REQUEST.format(
            event=json.dumps(first_request_event(method, path)), status=status
        )
        bodies = {"bare imports": BASELINE}
        for lid, (handler, attr) in functions.items():
            bodies[lid] = _LOAD_HANDLER.format(path=str(handler), attr=attr)
        then = {"ApiFunction": first_request}
        for name, body in bodies.items():  # warm the OS page cache once: the first timed run is no outlier
            time_child(body, env, template.parent, then.get(name, ""), site)
        samples: dict[str, list[list[float]]] = {name: [] for name in bodies}
        for _ in range(max(1, args.repeats)):  # interleaved, so a noisy moment hits every import alike
            for name, body in bodies.items():
                samples[name].append(time_child(body, env, template.parent, then.get(name, ""), site))
    medians = {name: statistics.median(s[0] for s in values) for name, values in samples.items()}
    first = statistics.median(s[1] for s in samples["ApiFunction"]) if "ApiFunction" in samples else None
    base = medians["bare imports"]
    print(f"cold-start bench: handler import in a fresh interpreter, median of {args.repeats} runs")
    if deps:
        print(f"  packages: CoreDepsLayer as sam build makes it ({deps.parent}), no site-packages (-S)")
    else:
        reason = "--dev-packages" if args.dev_packages else f"it could not be built: {why_not}"
        print(f"  packages: the development environment's, NOT the layer's ({reason});")
        print("  their extras (awscrt, pyOpenSSL) make the bare imports slower than on Lambda")
    print(f"  {'bare imports':<22} {base:7.3f} s   1.00x   ({BASELINE})")
    api_ratio = None
    for name in functions:
        ratio = medians[name] / base
        note = ""
        if name == "ApiFunction":
            api_ratio = ratio
            note = f"   ({'meets' if ratio <= API_GOAL else 'MISSES'} goal <= {API_GOAL:g}x)"
        print(f"  {name:<22} {medians[name]:7.3f} s   {ratio:4.2f}x{note}")
    if first is not None:
        request = f"{method} {path} -> {status}"
        print(f"  {'ApiFunction 1st request':<22} {first:7.3f} s   ({request}, after the import)")
        total = medians["ApiFunction"] + first
        label = "ApiFunction both"
        print(f"  {label:<22} {total:7.3f} s   {total / base:4.2f}x   (what the first user waits for)")
    if args.json:
        ratios = {k: v / base for k, v in medians.items()}
        print(json.dumps({"median_s": medians, "ratio": ratios, "api_first_request_s": first}))
    if args.check and api_ratio is not None and api_ratio > API_GOAL:
        return 1
    return 0
