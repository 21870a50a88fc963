"""Reading and writing the service's own audio and analysis objects in S3 (already validated by ingest)."""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Any

import numpy as np
import soundfile as sf

from audiomixer.store import blobs

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def read_audio(s3: S3Client, bucket: str, key: str) -> tuple[np.ndarray, int]:
    samples, sample_rate = sf.read(io.BytesIO(blobs.read(s3, bucket, key)), dtype="float32", always_2d=True)
    return samples, int(sample_rate)


def read_json(s3: S3Client, bucket: str, key: str) -> dict[str, Any]:
    return dict(json.loads(blobs.read(s3, bucket, key)))


def write_json(s3: S3Client, bucket: str, key: str, value: dict[str, Any]) -> None:
    blobs.write(s3, bucket, key, json.dumps(value, separators=(",", ":")).encode(), "application/json")
