"""The local stack keeps your work across restarts: projects, stems, analyses, the library, mixes and
API keys are saved under {data_dir}/state and put back on the next start.

moto keeps everything in memory, so the state goes out and comes back through the AWS APIs themselves,
as a backup and restore would: every table's items as DynamoDB JSON lines, every object as a file with
its content type. Saving is incremental (objects by ETag) and runs every few seconds and on a clean
stop, so a killed process loses at most the last interval. Nothing of moto's internals is pickled, so a
moto upgrade cannot make the saved state unreadable.

What is not kept: WebSocket connections (their clients are gone), queue messages and Batch jobs (their
workers stopped with the process) and raw uploads (S3 events on `uploads/` would re-run ingest). A
project, sound or mix that was still being processed when the stack stopped is ended `failed` on the
next start, with a reason that says to start it again, so nothing is left waiting forever."""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

log = logging.getLogger("audiomixer_local.persistence")

STATE_DIR = "state"
# Tables whose rows mean nothing after a restart: the WebSocket connections died with the gateway.
SKIPPED_TABLES = ("ConnectionsTable",)
# S3 events on this prefix start ingest: restoring it would re-run uploads that are already done.
SKIPPED_PREFIXES = ("uploads/",)
SAVE_INTERVAL_S = 3.0
INTERRUPTED = "the local service stopped while this was {status}; start it again"


@dataclass
class Restored:
    items: dict[str, int] = field(default_factory=dict)  # table -> rows
    objects: int = 0
    interrupted: list[str] = field(default_factory=list)  # "project <id>" ended failed

    def summary(self) -> str:
        rows = sum(self.items.values())
        text = f"restored {rows} rows in {len(self.items)} tables and {self.objects} objects"
        if self.interrupted:
            text += f"; {len(self.interrupted)} unfinished job(s) ended failed"
        return text


def _encode(value: Any) -> Any:
    """DynamoDB JSON with binary values as {"__b64__": ...} (json cannot hold bytes)."""
    if isinstance(value, bytes | bytearray):
        return {"__b64__": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__b64__"}:
            return base64.b64decode(value["__b64__"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class StateStore:
    """Saves and restores the stack's tables and buckets under `folder` (see the module's docstring)."""

    def __init__(
        self,
        folder: Path,
        tables: dict[str, str],
        buckets: dict[str, str],
        *,
        region: str,
        endpoint_url: str | None,
        interval_s: float = SAVE_INTERVAL_S,
    ) -> None:
        self.folder = Path(folder)
        self.tables = {lid: name for lid, name in tables.items() if lid not in SKIPPED_TABLES}
        self.buckets = dict(buckets)
        self.interval_s = interval_s
        self.ddb: Any = boto3.client("dynamodb", region_name=region, endpoint_url=endpoint_url)
        self.s3: Any = boto3.client("s3", region_name=region, endpoint_url=endpoint_url)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- paths ------------------------------------------------------------------------------------
    def _table_file(self, logical_id: str) -> Path:
        return self.folder / "dynamodb" / f"{logical_id}.jsonl"

    def _bucket_dir(self, logical_id: str) -> Path:
        return self.folder / "s3" / logical_id

    def _index_file(self, logical_id: str) -> Path:
        return self.folder / "s3" / f"{logical_id}.index.json"

    def _object_path(self, logical_id: str, key: str) -> Path:
        root = self._bucket_dir(logical_id).resolve()
        path = (root / key).resolve()
        if root not in path.parents:  # keys are built from ids; refuse anything that climbs out
            raise ValueError(f"object key {key!r} leaves the state folder")
        return path

    # --- save -------------------------------------------------------------------------------------
    def save(self) -> None:
        """Write every table and the objects that changed since the last save."""
        with self._lock:
            for lid, name in self.tables.items():
                self._save_table(lid, name)
            for lid, name in self.buckets.items():
                self._save_bucket(lid, name)

    def _save_table(self, logical_id: str, name: str) -> None:
        lines: list[str] = []
        for page in self.ddb.get_paginator("scan").paginate(TableName=name, ConsistentRead=True):
            lines.extend(json.dumps(_encode(item), sort_keys=True) for item in page.get("Items", []))
        _write_atomically(self._table_file(logical_id), "".join(line + "\n" for line in lines))

    def _objects(self, bucket: str) -> Iterator[dict[str, Any]]:
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            yield from page.get("Contents", [])

    def _save_bucket(self, logical_id: str, bucket: str) -> None:
        index_file = self._index_file(logical_id)
        index: dict[str, dict[str, Any]] = json.loads(index_file.read_text()) if index_file.exists() else {}
        seen: dict[str, dict[str, Any]] = {}
        for obj in self._objects(bucket):
            key = obj["Key"]
            if key.startswith(SKIPPED_PREFIXES):
                continue
            known = index.get(key)
            if known is not None and known["etag"] == obj["ETag"]:
                seen[key] = known
                continue
            try:
                got = self.s3.get_object(Bucket=bucket, Key=key)
            except self.s3.exceptions.NoSuchKey:
                continue  # deleted since the listing
            path = self._object_path(logical_id, key)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            with tmp.open("wb") as out:
                shutil.copyfileobj(got["Body"], out, 1 << 20)
            os.replace(tmp, path)
            seen[key] = {
                "etag": obj["ETag"],
                "content_type": got.get("ContentType") or "binary/octet-stream",
                "metadata": got.get("Metadata") or {},
            }
        for key in set(index) - set(seen):
            self._object_path(logical_id, key).unlink(missing_ok=True)
        _write_atomically(index_file, json.dumps(seen, sort_keys=True))

    # --- restore ----------------------------------------------------------------------------------
    def restore(self) -> Restored:
        """Put the saved rows and objects back (the tables and buckets must exist and be empty)."""
        restored = Restored()
        with self._lock:
            for lid, name in self.tables.items():
                restored.items[name] = self._restore_table(lid, name)
            for lid, name in self.buckets.items():
                restored.objects += self._restore_bucket(lid, name)
        return restored

    def _restore_table(self, logical_id: str, name: str) -> int:
        path = self._table_file(logical_id)
        if not path.exists():
            return 0
        items = [_decode(json.loads(line)) for line in path.read_text().splitlines() if line.strip()]
        for start in range(0, len(items), 25):
            requests = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
            pending: dict[str, Any] = {name: requests}
            while pending:
                pending = self.ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
        return len(items)

    def _restore_bucket(self, logical_id: str, bucket: str) -> int:
        index_file = self._index_file(logical_id)
        if not index_file.exists():
            return 0
        index: dict[str, dict[str, Any]] = json.loads(index_file.read_text())
        count = 0
        for key, meta in index.items():
            path = self._object_path(logical_id, key)
            if key.startswith(SKIPPED_PREFIXES) or not path.exists():
                continue
            with path.open("rb") as body:
                self.s3.put_object(
                    Bucket=bucket,
                    Key=key,
                    Body=body,
                    ContentType=meta.get("content_type") or "binary/octet-stream",
                    Metadata=meta.get("metadata") or {},
                )
            count += 1
        return count

    # --- background saving ------------------------------------------------------------------------
    def start(self) -> StateStore:
        self._thread = threading.Thread(target=self._loop, name="state-saver", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.save()
            except Exception:  # keep saving; a failed round is retried on the next one
                log.exception("saving the local state failed")

    def stop(self, final_save: bool = True) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        if final_save:
            self.save()


def end_interrupted_jobs() -> list[str]:
    """Every project, sound or mix left mid-processing by the previous run ends `failed` with a reason
    (their messages and Batch jobs died with that process). Returns "kind id" of each one."""
    from audiomixer.pipeline.failures import fail
    from audiomixer.store.models import Mix, Project, Sound

    ended = []
    for model, kind, done in (
        (Project, "project", {"ready", "failed"}),
        (Sound, "sound", {"ready", "failed"}),
        (Mix, "mix", {"completed", "failed"}),
    ):
        for item in model.scan():
            if item.status in done:
                continue
            reason = INTERRUPTED.format(status=item.status)
            if fail(item, reason, stage=item.stage or "restart"):
                ended.append(f"{kind} {getattr(item, f'{kind}_id')}")
    return ended
