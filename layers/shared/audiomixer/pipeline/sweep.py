"""The periodic sweep (a scheduled function; the local stack runs it on a timer): ends awaited uploads
whose presigned form expired unused as `failed`, and deletes objects that no row accounts for.

Every stage already removes what it wrote when it finds its job gone; the sweep catches the rest (a stage
that died between writing and noticing, an object written after a delete swept the prefix). It is a
scheduled function rather than an S3 lifecycle rule because only the tables know whether an object still
has an owner: a lifecycle rule can only expire by age or tag, and a tag would have to be removed from
every live object (and lifecycle runs once a day at best)."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger
from pynamodb.models import Model

from audiomixer import aws, notify
from audiomixer.pipeline.failures import kind_of
from audiomixer.settings import Settings, get_settings
from audiomixer.store import keys
from audiomixer.store.models import Mix, Project, Sound
from audiomixer.store.status import expire_unused_upload

logger = Logger(service="audiomixer", child=True)

_OWNERS: dict[str, type[Model]] = {"projects": Project, "library": Sound, "mixes": Mix}
_UPLOAD_OWNERS: dict[str, type[Model]] = {"base-track": Project, "stem": Project, "style-sound": Sound}


@dataclass
class SweepReport:
    expired_uploads: int = 0
    orphans_deleted: int = 0
    objects_seen: int = 0
    unknown_keys: list[str] = field(default_factory=list)


def owner_of(key: str) -> tuple[type[Model], str, str] | None:
    """(model, tenant, id) of the row an object belongs to, from its id-derived key; None if the key is
    not one the service builds."""
    parts = key.split("/")
    try:
        if key.startswith(keys.UPLOAD_PREFIX):
            upload = keys.UploadKey.parse(key)
            return _UPLOAD_OWNERS[upload.kind], upload.tenant_id, upload.object_id
        if len(parts) >= 4 and parts[1] in _OWNERS:
            keys.check_tenant(parts[0])
            if keys.is_id(parts[2]):
                return _OWNERS[parts[1]], parts[0], parts[2]
    except (ValueError, KeyError):
        return None
    return None


def run(*, s3: Any = None, settings: Settings | None = None, min_age_s: float | None = None) -> SweepReport:
    settings = settings or get_settings()
    min_age_s = settings.sweep_min_age_s if min_age_s is None else min_age_s
    s3 = s3 or aws.client("s3")
    report = SweepReport()
    report.expired_uploads = expire_unused_uploads(s3, settings)
    delete_orphans(s3, settings, min_age_s, report)
    logger.info("sweep finished", extra={"report": report.__dict__})
    return report


def expire_unused_uploads(s3: Any, settings: Settings, now: float | None = None) -> int:
    """End every awaited upload whose form has expired; announce each to its subscribers."""
    expired = 0
    for model in (Project, Sound):
        awaited = (model.status == "queued") & (model.stage == "upload") & model.expires_at.exists()
        for item in model.scan(filter_condition=awaited, consistent_read=True):
            if expire_unused_upload(item, s3, settings.bucket, now) and item.status == "failed":
                notify.announce(kind_of(item), item)
                expired += 1
    return expired


def delete_orphans(s3: Any, settings: Settings, min_age_s: float, report: SweepReport) -> None:
    """Delete the objects older than `min_age_s` whose owning row does not exist."""
    cutoff = time.time() - min_age_s
    candidates: dict[tuple[type[Model], str, str], list[str]] = defaultdict(list)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=settings.bucket):
        for obj in page.get("Contents", []):
            report.objects_seen += 1
            if obj["LastModified"].timestamp() > cutoff:
                continue
            owner = owner_of(obj["Key"])
            if owner is None:
                report.unknown_keys.append(obj["Key"])
                continue
            candidates[owner].append(obj["Key"])
    by_model: dict[type[Model], list[tuple[str, str]]] = defaultdict(list)
    for model, tenant_id, object_id in candidates:
        by_model[model].append((tenant_id, object_id))
    for model, ids in by_model.items():
        alive = {_ids_of(item) for item in model.batch_get(ids, consistent_read=True)}
        for tenant_id, object_id in ids:
            if (tenant_id, object_id) in alive:
                continue
            doomed = candidates[(model, tenant_id, object_id)]
            for start in range(0, len(doomed), 1000):
                batch = [{"Key": k} for k in doomed[start : start + 1000]]
                s3.delete_objects(Bucket=settings.bucket, Delete={"Objects": batch, "Quiet": True})
            report.orphans_deleted += len(doomed)
            logger.info(
                "deleted objects without a row",
                extra={"owner": f"{model.__name__} {tenant_id}/{object_id}", "objects": len(doomed)},
            )


_RANGE_KEYS: dict[type[Model], str] = {Project: "project_id", Sound: "sound_id", Mix: "mix_id"}


def _ids_of(item: Model) -> tuple[str, str]:
    values = item.attribute_values
    return str(values["tenant_id"]), str(values[_RANGE_KEYS[type(item)]])
