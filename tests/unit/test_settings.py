"""The settings model reads the environment as template.yaml and the local stack set it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from audiomixer.settings import ENV_PREFIX, Settings
from audiomixer_local.template import load

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.upper().startswith(ENV_PREFIX) or name.upper().startswith("AWS_"):
            monkeypatch.delenv(name)


def test_defaults_without_environment() -> None:
    s = Settings()
    assert (s.bucket, s.region, s.max_receive_count, s.served_models) == (
        "audiomixer-audio",
        "us-east-1",
        None,
        [],
    )
    assert s.cors_allow_origins == ["http://localhost:3000", "http://localhost:5173"]


def test_each_field_reads_its_prefixed_variable_in_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIOMIXER_BUCKET", "b-1")
    monkeypatch.setenv("audiomixer_projects_table", "p-1")
    monkeypatch.setenv("AUDIOMIXER_MAX_RECEIVE_COUNT", "5")
    monkeypatch.setenv("AUDIOMIXER_WS_ALLOW_KEY_IN_URL", "true")
    monkeypatch.setenv("AUDIOMIXER_JWT_TENANT_CLAIM", "")  # the template's empty default
    monkeypatch.setenv("BUCKET", "not-mine")  # unprefixed names are not read
    s = Settings()
    assert (s.bucket, s.projects_table, s.max_receive_count, s.ws_allow_key_in_url) == ("b-1", "p-1", 5, True)
    assert s.jwt_tenant_claim == ""


def test_aliased_fields_read_their_own_names_first_alias_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AUDIOMIXER_REGION", "ignored")  # an aliased field is read only under its aliases
    assert Settings().region == "eu-west-1"
    monkeypatch.setenv("AWS_REGION", "eu-central-1")  # what Lambda sets wins over the default region
    assert Settings().region == "eu-central-1"
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")
    assert Settings().dynamodb_endpoint_url == "http://127.0.0.1:5000"
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8000")
    s = Settings()
    assert (s.aws_endpoint_url, s.dynamodb_endpoint_url) == ("http://127.0.0.1:5000", "http://127.0.0.1:8000")


def test_list_fields_are_json_and_served_models_a_plain_list(monkeypatch: pytest.MonkeyPatch) -> None:
    origins = load(ROOT / "template.yaml")["Parameters"]["CorsAllowOrigins"]["Default"]
    monkeypatch.setenv("AUDIOMIXER_CORS_ALLOW_ORIGINS", origins)
    monkeypatch.setenv("AUDIOMIXER_RETRY_BACKOFF_S", "[1, 2, 3]")
    monkeypatch.setenv("AUDIOMIXER_SERVED_MODELS", "htdemucs_ft htdemucs,htdemucs_6s")
    s = Settings()
    assert s.cors_allow_origins == json.loads(origins)
    assert s.retry_backoff_s == [1, 2, 3]
    assert s.served_models == ["htdemucs_ft", "htdemucs", "htdemucs_6s"]


def test_a_bad_variable_is_a_validation_error_that_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIOMIXER_CORS_ALLOW_ORIGINS", "http://a.test")  # not JSON
    with pytest.raises(ValidationError, match="AUDIOMIXER_CORS_ALLOW_ORIGINS is not valid JSON"):
        Settings()
    monkeypatch.delenv("AUDIOMIXER_CORS_ALLOW_ORIGINS")
    monkeypatch.setenv("AUDIOMIXER_MAX_CHANNELS", "many")
    with pytest.raises(ValidationError, match="max_channels"):
        Settings()
    monkeypatch.delenv("AUDIOMIXER_MAX_CHANNELS")
    monkeypatch.setenv("AUDIOMIXER_MULTIPART_LIMIT_BYTES", str(8 * 1024 * 1024))
    with pytest.raises(ValidationError, match="over what API Gateway \\+ Lambda carry"):
        Settings()


def test_values_given_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIOMIXER_MAX_UPLOAD_BYTES", "1")
    monkeypatch.setenv("AUDIOMIXER_MAX_CHANNELS", "2")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    s = Settings(max_upload_bytes=1234, AWS_DEFAULT_REGION="ap-south-1")
    assert (s.max_upload_bytes, s.max_channels, s.region) == (1234, 2, "ap-south-1")
    assert Settings(served_models="a,b").served_models == ["a", "b"]
