"""PynamoDB models. Keys are partitioned by tenant; every row carries a version attribute so that
concurrent stage updates never silently overwrite one another. Table names, region and endpoint come
from settings at `configure()` time (never at import), so tests and the local stack can rebind them."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pynamodb.attributes import (
    BooleanAttribute,
    JSONAttribute,
    MapAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
    VersionAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

from audiomixer.settings import get_settings


def utcnow() -> datetime:
    return datetime.now(UTC)


# The one spelling of each status; the allowed moves between them are in store.status.
class ProjectStatus(StrEnum):
    QUEUED = "queued"
    SEPARATING = "separating"
    ANALYSING = "analysing"
    READY = "ready"
    FAILED = "failed"


class SoundStatus(StrEnum):
    QUEUED = "queued"
    ANALYSING = "analysing"
    READY = "ready"
    FAILED = "failed"


class MixStatus(StrEnum):
    QUEUED = "queued"
    RENDERING = "rendering"
    COMPLETED = "completed"
    FAILED = "failed"


class ContentHashIndex(GlobalSecondaryIndex["Project"]):
    class Meta:
        index_name = "content_hash_index"
        projection = KeysOnlyProjection()

    tenant_content_hash = UnicodeAttribute(hash_key=True)


class Project(Model):
    class Meta:
        table_name = "audiomixer-projects"

    tenant_id = UnicodeAttribute(hash_key=True)
    project_id = UnicodeAttribute(range_key=True)
    name = UnicodeAttribute()
    status = UnicodeAttribute(default=ProjectStatus.QUEUED.value)  # a ProjectStatus
    stage = UnicodeAttribute(default="upload")
    progress = NumberAttribute(default=0)
    failure_reason = UnicodeAttribute(null=True)
    # "song": separate with Demucs; "stems": the user brought stems, separation is skipped
    source_kind = UnicodeAttribute(default="song")
    stems = MapAttribute[str, Any](default=dict)  # type: ignore[no-untyped-call]  # stem -> True once in S3
    # Separation options (audiomixer.stem_sets); None: the deployment's DEMUCS_MODEL, all of its stems.
    separation_model = UnicodeAttribute(null=True)
    two_stems = UnicodeAttribute(null=True)  # "vocals": stems vocals + no_vocals
    duration_s = NumberAttribute(null=True)
    size_bytes = NumberAttribute(default=0)
    content_hash = UnicodeAttribute(null=True)
    tenant_content_hash = UnicodeAttribute(null=True)
    content_hash_index = ContentHashIndex()
    batch_job_id = UnicodeAttribute(null=True)
    analysis = JSONAttribute(null=True)  # per-stem summary
    # Epoch seconds (DynamoDB TTL) while a presigned upload is awaited; ingest clears it.
    expires_at = NumberAttribute(null=True)
    # Bytes charged to the tenant's storage counter (store.usage) when the upload was admitted; refunded
    # once, by whoever deletes the row (or ends an upload that never arrived).
    quota_bytes = NumberAttribute(default=0)
    created_at = UTCDateTimeAttribute(default=utcnow)
    updated_at = UTCDateTimeAttribute(default=utcnow)
    version = VersionAttribute()


class Sound(Model):
    """A style sound in a tenant's library."""

    class Meta:
        table_name = "audiomixer-sounds"

    tenant_id = UnicodeAttribute(hash_key=True)
    sound_id = UnicodeAttribute(range_key=True)
    name = UnicodeAttribute()
    status = UnicodeAttribute(default=SoundStatus.QUEUED.value)  # a SoundStatus
    stage = UnicodeAttribute(default="upload")
    failure_reason = UnicodeAttribute(null=True)
    duration_s = NumberAttribute(null=True)
    size_bytes = NumberAttribute(default=0)
    content_hash = UnicodeAttribute(null=True)
    analysis = JSONAttribute(null=True)  # summary of the grain table
    expires_at = NumberAttribute(null=True)  # as Project.expires_at
    quota_bytes = NumberAttribute(default=0)  # as Project.quota_bytes
    created_at = UTCDateTimeAttribute(default=utcnow)
    updated_at = UTCDateTimeAttribute(default=utcnow)
    version = VersionAttribute()


class Mix(Model):
    class Meta:
        table_name = "audiomixer-mixes"

    tenant_id = UnicodeAttribute(hash_key=True)
    mix_id = UnicodeAttribute(range_key=True)
    project_id = UnicodeAttribute()
    config = JSONAttribute(default=dict)  # stem -> a mix_settings.StemConfig, dumped
    settings = JSONAttribute(default=dict)  # a mix_settings.MixSettings, dumped
    status = UnicodeAttribute(default=MixStatus.QUEUED.value)  # a MixStatus
    stage = UnicodeAttribute(default="queued")
    progress = NumberAttribute(default=0)
    failure_reason = UnicodeAttribute(null=True)
    output_key = UnicodeAttribute(null=True)
    output_format = UnicodeAttribute(default="wav")  # a mix_settings.OutputFormat
    size_bytes = NumberAttribute(default=0)
    created_at = UTCDateTimeAttribute(default=utcnow)
    updated_at = UTCDateTimeAttribute(default=utcnow)
    version = VersionAttribute()


class ApiKey(Model):
    """An API key, stored only as a peppered hash."""

    class Meta:
        table_name = "audiomixer-api-keys"

    key_hash = UnicodeAttribute(hash_key=True)
    tenant_id = UnicodeAttribute()
    label = UnicodeAttribute(null=True)
    revoked = BooleanAttribute(default=False)
    created_at = UTCDateTimeAttribute(default=utcnow)


class SubscriptionIndex(GlobalSecondaryIndex["Connection"]):
    class Meta:
        index_name = "subscription_index"
        projection = AllProjection()

    subscription = UnicodeAttribute(hash_key=True)


class Connection(Model):
    """A WebSocket connection subscribed to one project or mix."""

    class Meta:
        table_name = "audiomixer-connections"

    connection_id = UnicodeAttribute(hash_key=True)
    subscription = UnicodeAttribute()  # "{tenant}#project#{id}" or "{tenant}#mix#{id}"
    subscription_index = SubscriptionIndex()
    tenant_id = UnicodeAttribute()
    endpoint = UnicodeAttribute(null=True)
    expires_at = NumberAttribute()  # epoch seconds, DynamoDB TTL
    created_at = UTCDateTimeAttribute(default=utcnow)


class JobSlot(Model):
    """One of a tenant's `max_concurrent_jobs` slots (`slot#{tenant}#{n}`), held by the project or mix
    that took it with a conditional write; a slot whose holder has finished is taken over the same way."""

    class Meta:
        table_name = "audiomixer-usage"

    usage_key = UnicodeAttribute(hash_key=True)
    tenant_id = UnicodeAttribute()
    holder = UnicodeAttribute()  # "project#{id}" or "mix#{id}"
    taken_at = NumberAttribute()  # epoch seconds


class StoredBytes(Model):
    """A tenant's storage counter (`bytes#{tenant}`): raised before an upload is admitted, only while it
    stays within the quota (a conditional ADD), lowered when a project or sound is deleted."""

    class Meta:
        table_name = "audiomixer-usage"

    usage_key = UnicodeAttribute(hash_key=True)
    used = NumberAttribute(default=0)


class RequestWindow(Model):
    """Requests of one tenant in one fixed window (`rate#{tenant}#{window}`), shared by every API
    container; DynamoDB's TTL removes old windows."""

    class Meta:
        table_name = "audiomixer-usage"

    usage_key = UnicodeAttribute(hash_key=True)
    requests = NumberAttribute(default=0)
    expires_at = NumberAttribute()


class WsTicket(Model):
    """A short-lived, single-use WebSocket ticket (`ticket#{sha256 of the ticket}`): what a browser puts in
    the `$connect` URL instead of its long-lived API key (query strings end up in logs)."""

    class Meta:
        table_name = "audiomixer-usage"

    usage_key = UnicodeAttribute(hash_key=True)
    tenant_id = UnicodeAttribute()
    expires_at = NumberAttribute()  # epoch seconds; also DynamoDB's TTL


ALL_MODELS: tuple[type[Model], ...] = (
    Project,
    Sound,
    Mix,
    ApiKey,
    Connection,
    JobSlot,
    StoredBytes,
    RequestWindow,
    WsTicket,
)


def configure() -> None:
    """Bind every model to the tables, region and endpoint of the current settings."""
    s = get_settings()
    names = {
        Project: s.projects_table,
        Sound: s.sounds_table,
        Mix: s.mixes_table,
        ApiKey: s.api_keys_table,
        Connection: s.connections_table,
        JobSlot: s.usage_table,
        StoredBytes: s.usage_table,
        RequestWindow: s.usage_table,
        WsTicket: s.usage_table,
    }
    for model, table in names.items():
        binding = (table, s.region, s.dynamodb_endpoint_url)
        if (
            model.Meta.table_name,
            getattr(model.Meta, "region", None),
            getattr(model.Meta, "host", None),
        ) == binding:
            continue  # a connection costs a botocore session: keep it while nothing changed
        model.Meta.table_name, model.Meta.region, model.Meta.host = binding
        model.Meta.max_pool_connections = 50
        model._connection = None  # PynamoDB caches the connection per model
        for index in model._indexes.values():
            index._connection = None  # type: ignore[attr-defined]


configure()
