"""S3 keys, built from ids only (never from client filenames)."""

from __future__ import annotations

import os
import re
import time

from audiomixer.mix_settings import OUTPUT_FORMATS
from audiomixer.settings import STEMS
from audiomixer.stem_sets import STEM_NAME

# The one spelling of an id and a tenant id (queue messages validate with the same patterns).
ID_PATTERN = r"^[0-9a-f]{32}$"
TENANT_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
_ID = re.compile(ID_PATTERN)
_TENANT = re.compile(TENANT_PATTERN)
UPLOAD_PREFIX = "uploads/"
UPLOAD_KINDS = ("base-track", "style-sound", "stem")


def new_id() -> str:
    """32 hex digits; the first 12 are the creation time in ms, so a table's sort key orders rows by age
    and lists can show the newest first. The other 80 bits are random."""
    return f"{int(time.time() * 1000):012x}{os.urandom(10).hex()}"


def is_id(value: str) -> bool:
    return bool(_ID.match(value))


def is_tenant(value: str) -> bool:
    return bool(_TENANT.match(value))


def check_tenant(tenant_id: str) -> str:
    if not _TENANT.match(tenant_id):
        raise ValueError(f"invalid tenant id {tenant_id!r}: use lowercase letters, digits and '-'")
    return tenant_id


def _check(tenant_id: str, object_id: str) -> None:
    check_tenant(tenant_id)
    if not is_id(object_id):
        raise ValueError(f"invalid id {object_id!r}")


def upload(tenant_id: str, kind: str, object_id: str, stem: str | None = None) -> str:
    """Where a raw upload lands; the bucket notifies the ingest queue for this prefix only."""
    _check(tenant_id, object_id)
    if kind not in UPLOAD_KINDS:
        raise ValueError(f"unknown upload kind {kind!r}")
    if kind == "stem":
        if stem not in STEMS:  # a user's own stems are the four standard ones
            raise ValueError(f"unknown stem {stem!r}")
        return f"{UPLOAD_PREFIX}{tenant_id}/stem/{object_id}/{stem}"
    return f"{UPLOAD_PREFIX}{tenant_id}/{kind}/{object_id}"


class UploadKey:
    """A parsed raw-upload key."""

    def __init__(self, tenant_id: str, kind: str, object_id: str, stem: str | None) -> None:
        self.tenant_id, self.kind, self.object_id, self.stem = tenant_id, kind, object_id, stem

    @classmethod
    def parse(cls, key: str) -> UploadKey:
        parts = key.split("/")
        if len(parts) < 4 or parts[0] + "/" != UPLOAD_PREFIX:
            raise ValueError(f"not an upload key: {key!r}")
        tenant_id, kind, object_id = parts[1], parts[2], parts[3]
        stem = None
        if kind == "stem":
            if len(parts) != 5:
                raise ValueError(f"not a stem upload key: {key!r}")
            stem = parts[4]
        elif len(parts) != 4:
            raise ValueError(f"not an upload key: {key!r}")
        upload(tenant_id, kind, object_id, stem)  # validates every part
        return cls(tenant_id, kind, object_id, stem)


def project_prefix(tenant_id: str, project_id: str) -> str:
    _check(tenant_id, project_id)
    return f"{tenant_id}/projects/{project_id}/"


def project_source(tenant_id: str, project_id: str) -> str:
    return project_prefix(tenant_id, project_id) + "source.flac"


def _check_stem(stem_name: str) -> str:
    # Any stem a model can give (guitar, no_vocals, ...); the name never comes from a filename.
    if not STEM_NAME.match(stem_name):
        raise ValueError(f"unknown stem {stem_name!r}")
    return stem_name


def stem(tenant_id: str, project_id: str, stem_name: str) -> str:
    return stems_prefix(tenant_id, project_id) + f"/{_check_stem(stem_name)}.flac"


def stems_prefix(tenant_id: str, project_id: str) -> str:
    return project_prefix(tenant_id, project_id) + "stems"


def checkpoints_prefix(tenant_id: str, project_id: str) -> str:
    return project_prefix(tenant_id, project_id) + "checkpoints"


def stem_analysis(tenant_id: str, project_id: str, stem_name: str) -> str:
    return project_prefix(tenant_id, project_id) + f"analysis/{_check_stem(stem_name)}.json"


def sound_prefix(tenant_id: str, sound_id: str) -> str:
    _check(tenant_id, sound_id)
    return f"{tenant_id}/library/{sound_id}/"


def sound_audio(tenant_id: str, sound_id: str) -> str:
    return sound_prefix(tenant_id, sound_id) + "sound.flac"


def sound_analysis(tenant_id: str, sound_id: str) -> str:
    """The grain table the analyse stage cuts at the default grain."""
    return sound_prefix(tenant_id, sound_id) + "analysis.json"


def sound_grain_table(tenant_id: str, sound_id: str, grain_duration_ms: int) -> str:
    """The grain table cut at another grain on a render's first use of it."""
    if not isinstance(grain_duration_ms, int) or grain_duration_ms <= 0:
        raise ValueError(f"invalid grain {grain_duration_ms!r}")
    return sound_prefix(tenant_id, sound_id) + f"grains/{grain_duration_ms}ms.json"


def mix_prefix(tenant_id: str, mix_id: str) -> str:
    _check(tenant_id, mix_id)
    return f"{tenant_id}/mixes/{mix_id}/"


def mix_output(tenant_id: str, mix_id: str, fmt: str) -> str:
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"unknown mix format {fmt!r}")
    return mix_prefix(tenant_id, mix_id) + f"mix.{fmt}"
