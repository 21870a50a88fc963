"""The one settings model. Every resource name reaches the code through the environment that
template.yaml sets (Globals.Function.Environment); the local stack derives the same variables from the
same template, so the two cannot drift.

A plain pydantic model reads the environment itself (pydantic-settings and the dotenv, argparse and cloud
providers it imports cost the API function's cold start about 10 ms for what these few lines do): field
`x` comes from `AUDIOMIXER_X` (any case), a field with a `validation_alias` from those names instead, list
fields from JSON; values given to `Settings(...)` win over the environment."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Annotated, Any, get_origin

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.fields import FieldInfo

STEMS: tuple[str, ...] = ("drums", "bass", "vocals", "other")
ENV_PREFIX = "AUDIOMIXER_"


class RawEnv:
    """Marks a list field whose environment variable is taken as it is rather than as JSON (its own
    validator splits it)."""


def _input_names(name: str, field: FieldInfo) -> list[str]:
    """The keys a field's value is given under, in order of precedence: its validation aliases (which
    are also its environment variables), else its name (its variable: `AUDIOMIXER_` + the name)."""
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices]
    if isinstance(alias, str):
        return [alias]
    return [name]


def environment_values(fields: Mapping[str, FieldInfo], environ: Mapping[str, str]) -> dict[str, Any]:
    """What the environment gives `fields`, keyed as the model takes it (a field's name, or the alias
    that was set). Variable names match in any case; list fields are decoded from JSON unless `RawEnv`."""
    lowered = {variable.lower(): value for variable, value in environ.items()}
    values: dict[str, Any] = {}
    for name, field in fields.items():
        for key in _input_names(name, field):
            variable = (key if field.validation_alias is not None else ENV_PREFIX + key).lower()
            if variable not in lowered:
                continue
            value = lowered[variable]
            if get_origin(field.annotation) in (list, dict) and RawEnv not in field.metadata:
                try:
                    value = json.loads(value)
                except ValueError:
                    raise ValueError(f"{variable.upper()} is not valid JSON: {value!r}") from None
            values[key] = value
            break
    return values


class Settings(BaseModel):
    model_config = ConfigDict(extra="ignore", validate_default=True)

    # --- resources (set by template.yaml / the local stack) ---
    bucket: str = "audiomixer-audio"
    projects_table: str = "audiomixer-projects"
    sounds_table: str = "audiomixer-sounds"
    mixes_table: str = "audiomixer-mixes"
    api_keys_table: str = "audiomixer-api-keys"
    connections_table: str = "audiomixer-connections"
    idempotency_table: str = "audiomixer-idempotency"
    usage_table: str = "audiomixer-usage"  # job slots, storage counters, request windows per tenant
    ingest_queue_url: str = ""
    separate_queue_url: str = ""
    analyse_queue_url: str = ""
    render_queue_url: str = ""
    batch_job_queue: str = "audiomixer-separation"
    batch_job_definition: str = "audiomixer-separation"
    # API Gateway management endpoint, https://{api-id}.execute-api.{region}.amazonaws.com/{stage}
    ws_endpoint: str = ""

    # --- AWS plumbing ---
    region: str = Field(
        default="us-east-1", validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION")
    )
    # boto3 honours AWS_ENDPOINT_URL itself; PynamoDB needs it spelled out.
    aws_endpoint_url: str | None = Field(default=None, validation_alias=AliasChoices("AWS_ENDPOINT_URL"))
    dynamodb_endpoint_url: str | None = Field(
        default=None, validation_alias=AliasChoices("AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL")
    )

    # --- limits (ingest and API) ---
    max_upload_bytes: int = 200 * 1024 * 1024
    multipart_limit_bytes: int = 4 * 1024 * 1024
    max_duration_s: float = 15 * 60.0
    min_duration_s: float = 0.05
    max_channels: int = 8
    min_sample_rate: int = 8_000
    max_sample_rate: int = 192_000
    # Decoded samples (frames x channels) one upload may hold: 15 min of 96 kHz stereo, 691 MB as float32.
    max_decoded_samples: int = 15 * 60 * 96_000 * 2
    target_sample_rate: int = 44_100
    style_sound_max_duration_s: float = 120.0
    # Ingest decodes to float32 before downmixing: rate x channels x duration x 4 bytes must stay under this
    # (with its working copies it must fit IngestFunction's MemorySize; tests/unit/test_template.py checks).
    # 15 minutes of 96 kHz stereo fit; 15 minutes at 192 kHz in 8 channels (5.5 GB) do not.
    max_decoded_mb: int = 768

    # --- tenants ---
    max_concurrent_jobs: int = 5
    max_stored_bytes: int = 5 * 1024**3
    api_key_pepper: str = "local-dev-pepper"
    # When deployed, the pepper is read from SSM under this name (see auth.pepper).
    api_key_pepper_parameter: str | None = None
    # JWT mode (template parameters JwtIssuer, JwtAudience, JwtTenantClaim): tokens are verified by the
    # API and $connect functions themselves, so API keys keep working beside them. Empty issuer: off.
    jwt_issuer: str | None = None
    jwt_audience: str = ""  # comma-separated; a token's `aud` or `client_id` must be one of them
    jwt_tenant_claim: str | None = None  # a claim users cannot write; None: the tenant is `sub`
    cors_allow_origins: list[str] = ["http://localhost:3000", "http://localhost:5173"]
    presign_expiry_s: int = 900
    # Requests per tenant, shared by every API container: `rate_limit_burst` per window of
    # burst / rate seconds (so `rate_limit_per_s` on average).
    rate_limit_per_s: float = 20.0
    rate_limit_burst: int = 40
    # The sweep leaves objects younger than this alone (their row may be about to be written, or the
    # stage that wrote them about to clean up).
    sweep_min_age_s: float = 15 * 60.0
    # The web console's static files (web/console in the repository; /opt/console in the API's layer).
    # None: the repository's copy when there is one, else no console.
    web_dir: str | None = None
    download_expiry_s: int = 300

    # --- separation ---
    demucs_model: str = Field(
        default="htdemucs_ft", validation_alias=AliasChoices("DEMUCS_MODEL", "AUDIOMIXER_DEMUCS_MODEL")
    )
    demucs_repo: str | None = Field(
        default=None, validation_alias=AliasChoices("DEMUCS_REPO", "AUDIOMIXER_DEMUCS_REPO")
    )
    # The models this deployment's separation image holds (template.yaml's ServedDemucsModels, the same
    # list as gpu_batch/Dockerfile's DEMUCS_MODELS build arg), space- or comma-separated. Empty (local
    # runs): every model Demucs knows is allowed, fetched on first use.
    served_models: Annotated[list[str], RawEnv] = []
    separation_chunk_s: float = 30.0
    separation_overlap_s: float = 1.0

    # --- queues ---
    # Deliveries before a message moves to its DLQ (the last one records the failure): template.yaml's
    # MaxReceiveCount, the same value its RedrivePolicies use. None only outside a deployed/local stack.
    max_receive_count: int | None = None
    # A failed delivery comes back after this many seconds (one entry per receive, the last repeats):
    # seconds first, then minutes, instead of the queue's visibility timeout (6x the function's Timeout).
    retry_backoff_s: list[int] = [10, 60, 300, 900]

    # --- notifications ---
    progress_min_interval_s: float = 1.0
    connection_ttl_s: int = 2 * 60 * 60
    # WebSocket `$connect` takes a single-use ticket from POST /api/v1/ws-tickets, valid this long.
    ws_ticket_ttl_s: int = 60
    # Also take the API key itself as `?token=` (query strings end up in logs): local development only.
    ws_allow_key_in_url: bool = False

    @model_validator(mode="before")
    @classmethod
    def _read_environment(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        # Values given to Settings(...) win: leave out the environment's for each field given.
        given = {n for n, f in cls.model_fields.items() if set(_input_names(n, f)) & data.keys()}
        fields = {n: f for n, f in cls.model_fields.items() if n not in given}
        return {**environment_values(fields, os.environ), **data}

    @model_validator(mode="after")
    def _direct_uploads_reach_the_api(self) -> Settings:
        # API Gateway hands a multipart body to Lambda base64-encoded inside a 6 MB invocation payload:
        # over that the app never sees the request, and the client gets the gateway's bare 413 instead of
        # the app's, which points to presigned uploads. Keep the app's limit where it can still answer.
        if 4 * ((self.multipart_limit_bytes + 2) // 3) + 64 * 1024 > 6 * 1024 * 1024:
            raise ValueError(
                f"multipart_limit_bytes {self.multipart_limit_bytes} is over what API Gateway + Lambda "
                "carry (about 4.6 MB); larger files go through presigned uploads"
            )
        return self

    @field_validator("served_models", mode="before")
    @classmethod
    def _split_names(cls, value: Any) -> Any:
        return [n for n in re.split(r"[\s,]+", value) if n] if isinstance(value, str) else value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
