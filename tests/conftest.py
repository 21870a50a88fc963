"""Shared fixtures. `aws` gives a fresh in-process moto world with every resource that template.yaml
declares, created by the same code the local stack uses, and the environment pointed at it."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Shared helpers (audio_helpers, dynamodb_local) live in tests/, which is not a package.
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))
TEMPLATE = ROOT / "template.yaml"
EVENTS = ROOT / "tests" / "events"

# Never reach a real AWS account from a test run.
for _name, _value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "POWERTOOLS_METRICS_NAMESPACE": "AudioMixerTests",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "DEMUCS_MODEL": "demucs_unittest",
}.items():
    os.environ[_name] = _value
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.pop("AWS_PROFILE", None)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """moto in-process with template.yaml's resources; yields the LocalResources description."""
    from moto import mock_aws

    from audiomixer import aws as aws_clients
    from audiomixer_local.resources import create_resources

    with mock_aws():
        resources = create_resources(TEMPLATE)
        for name, value in resources.env.items():
            monkeypatch.setenv(name, str(value))
        aws_clients.reset()
        yield resources
    aws_clients.reset()


class FakeLambdaContext:
    function_name = "test-function"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:test-function"
    memory_limit_in_mb = 1024
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    log_group_name = "/aws/lambda/test-function"
    log_stream_name = "2026/11/26/[$LATEST]0"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The embedded local stack (what `audiomixer dev` runs) in this process, on free ports, for one test
    module. Visibility timeouts are scaled down (AUDIOMIXER_LOCAL_TIME_SCALE) so redelivery and DLQ
    redrive happen within seconds; separation uses demucs_unittest with short chunks."""
    from moto.moto_api._internal.models import moto_api_backend

    from audiomixer_local.stack import LocalStack, StackConfig

    # In-process moto keeps its backends in globals that outlive a stopped server: start each module clean.
    moto_api_backend.reset()
    overrides = {
        "AUDIOMIXER_LOCAL_TIME_SCALE": os.environ.get("AUDIOMIXER_LOCAL_TIME_SCALE", "0.01"),
        "AUDIOMIXER_SEPARATION_CHUNK_S": "2",
        "AUDIOMIXER_SEPARATION_OVERLAP_S": "0.25",
    }
    saved = {k: os.environ.get(k) for k in overrides}
    os.environ.update(overrides)
    stack = LocalStack(
        StackConfig(
            template=TEMPLATE,
            port=0,
            data_dir=tmp_path_factory.mktemp("local-stack"),
            demucs_model="demucs_unittest",
        )
    )
    try:
        yield stack.start()
    finally:
        stack.stop()
        moto_api_backend.reset()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
