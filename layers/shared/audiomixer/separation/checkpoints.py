"""Per-chunk checkpoints of a separation, so that a killed job resumes where it stopped.

A chunk's stems are 24-bit integers (what the output FLACs hold), stored losslessly as FLAC: about half
the size of raw PCM, and the resumed run uses bit-for-bit what the first run computed. The manifest
(JSON) describes the configuration the chunks belong to; the separator ignores and clears chunks whose
manifest does not match its own.
"""

from __future__ import annotations

import io
import json
import logging
import shutil
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import soundfile as sf

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

logger = logging.getLogger(__name__)

Stems = dict[str, np.ndarray]
_MAGIC = b"AMCK1\n"
_MANIFEST = "manifest.json"


@runtime_checkable
class CheckpointStore(Protocol):
    def load(self, chunk_index: int) -> Stems | None:
        """The stems saved for this chunk, or None when there are none (or they are unreadable)."""

    def save(self, chunk_index: int, stems: Stems) -> None: ...

    def read_manifest(self) -> dict[str, Any] | None: ...

    def write_manifest(self, manifest: dict[str, Any]) -> None: ...

    def clear(self) -> None:
        """Delete every chunk and the manifest."""


def encode_stems(stems: Stems, samplerate: int = 44_100) -> bytes:
    """stem -> int32 array (frames, channels) of 24-bit sample values -> bytes.

    Layout: magic, u32 header length, JSON header {stems, sizes}, then one FLAC per stem."""
    blobs: list[bytes] = []
    for name, data in stems.items():
        arr = np.ascontiguousarray(data, dtype=np.int32)
        if arr.ndim != 2:
            raise ValueError(f"stem {name!r} must be (frames, channels), got {arr.shape}")
        buf = io.BytesIO()
        # soundfile maps int32 to PCM_24 by keeping the top 24 bits: shift our 24-bit values up.
        sf.write(buf, arr << 8, samplerate, format="FLAC", subtype="PCM_24")
        blobs.append(buf.getvalue())
    header = json.dumps({"stems": list(stems), "sizes": [len(b) for b in blobs]}).encode()
    return _MAGIC + struct.pack("<I", len(header)) + header + b"".join(blobs)


def decode_stems(payload: bytes) -> Stems:
    if not payload.startswith(_MAGIC):
        raise ValueError("not a separation checkpoint")
    pos = len(_MAGIC)
    (hlen,) = struct.unpack_from("<I", payload, pos)
    pos += 4
    header = json.loads(payload[pos : pos + hlen])
    pos += hlen
    out: Stems = {}
    for name, size in zip(header["stems"], header["sizes"], strict=True):
        data, _ = sf.read(io.BytesIO(payload[pos : pos + size]), dtype="int32", always_2d=True)
        out[name] = data >> 8
        pos += size
    if pos != len(payload):
        raise ValueError("truncated or padded checkpoint")
    return out


def _chunk_name(chunk_index: int) -> str:
    return f"chunk-{chunk_index:05d}.bin"


class LocalCheckpointStore:
    """Checkpoints in a local folder (the offline CLI, the benchmark, tests)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def load(self, chunk_index: int) -> Stems | None:
        path = self.directory / _chunk_name(chunk_index)
        if not path.is_file():
            return None
        try:
            return decode_stems(path.read_bytes())
        except (ValueError, RuntimeError, KeyError, struct.error) as exc:
            logger.warning("ignoring unreadable checkpoint %s: %s", path, exc)
            return None

    def save(self, chunk_index: int, stems: Stems) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / _chunk_name(chunk_index)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(encode_stems(stems))
        tmp.replace(path)  # atomic: a kill mid-write leaves no half chunk behind

    def read_manifest(self) -> dict[str, Any] | None:
        path = self.directory / _MANIFEST
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / (_MANIFEST + ".tmp")
        tmp.write_text(json.dumps(manifest, sort_keys=True))
        tmp.replace(self.directory / _MANIFEST)

    def clear(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    def chunk_indices(self) -> list[int]:
        if not self.directory.is_dir():
            return []
        return sorted(int(p.stem.split("-")[1]) for p in self.directory.glob("chunk-*.bin"))


class S3CheckpointStore:
    """Checkpoints under `s3://{bucket}/{prefix}/` (S3 PUTs are atomic, so no partial chunk is visible)."""

    def __init__(self, s3_client: S3Client, bucket: str, prefix: str) -> None:
        self.s3 = s3_client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/"

    def _key(self, name: str) -> str:
        return self.prefix + name

    def _get(self, name: str) -> bytes | None:
        try:
            obj = self.s3.get_object(Bucket=self.bucket, Key=self._key(name))
        except self.s3.exceptions.NoSuchKey:
            return None
        return obj["Body"].read()

    def load(self, chunk_index: int) -> Stems | None:
        payload = self._get(_chunk_name(chunk_index))
        if payload is None:
            return None
        try:
            return decode_stems(payload)
        except (ValueError, RuntimeError, KeyError, struct.error) as exc:
            logger.warning("ignoring unreadable checkpoint %s: %s", self._key(_chunk_name(chunk_index)), exc)
            return None

    def save(self, chunk_index: int, stems: Stems) -> None:
        self.s3.put_object(
            Bucket=self.bucket,
            Key=self._key(_chunk_name(chunk_index)),
            Body=encode_stems(stems),
            ContentType="application/octet-stream",
        )

    def read_manifest(self) -> dict[str, Any] | None:
        payload = self._get(_MANIFEST)
        if payload is None:
            return None
        try:
            data = json.loads(payload)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        self.s3.put_object(
            Bucket=self.bucket,
            Key=self._key(_MANIFEST),
            Body=json.dumps(manifest, sort_keys=True).encode(),
            ContentType="application/json",
        )

    def keys(self) -> list[str]:
        keys: list[str] = []
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
        return keys

    def clear(self) -> None:
        keys = self.keys()
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            batch = keys[start : start + 1000]
            resp = self.s3.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
            )
            errors = resp.get("Errors", [])
            if errors:
                raise RuntimeError(f"could not delete {len(errors)} checkpoint objects: {errors[:3]}")
