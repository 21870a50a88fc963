"""The song the separation tests upload and separate: two tones (82 Hz sine, 330 Hz square) under a slow
tremolo, already on the 24-bit grid (so stems can be checked to sum back to it exactly), and a moto S3
bucket holding it as the project's source."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import soundfile as sf
from moto import mock_aws

from audiomixer.separation.chunked import FULL_SCALE, quantise

SR = 44_100
BUCKET = "audiomixer-test"
SOURCE = "t1/projects/p1/source.flac"


def song(seconds: float = 2.9) -> np.ndarray:
    """(n, 2) float samples at SR, exactly representable as PCM-24."""
    t = np.arange(int(seconds * SR)) / SR
    x = np.stack([np.sin(2 * np.pi * 82 * t), np.sign(np.sin(2 * np.pi * 330 * t))], axis=1)
    x *= 0.25 * (1 + np.sin(2 * np.pi * 1.5 * t))[:, None] / 2
    return quantise(x)[0] / FULL_SCALE


def s3_with_source(tmp_path: Path) -> Iterator[Any]:
    """A moto S3 client whose BUCKET holds `song()` as a 24-bit FLAC at SOURCE (for a fixture)."""
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        src = tmp_path / "source.flac"
        sf.write(str(src), song(), SR, subtype="PCM_24")
        client.upload_file(str(src), BUCKET, SOURCE)
        yield client
