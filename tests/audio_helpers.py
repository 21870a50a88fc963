"""Synthetic audio and directly inserted rows for the integration and end-to-end suites (nothing is
downloaded)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import soundfile as sf


def synth_song(seconds: float = 6.0, sr: int = 44100) -> bytes:
    """Kick-like clicks, a bass line and a pad (16-bit stereo WAV): something every stem can hold."""
    t = np.arange(int(seconds * sr)) / sr
    kick = np.zeros_like(t)
    for onset in np.arange(0.25, seconds, 0.5):
        i = int(onset * sr)
        n = min(int(0.12 * sr), len(t) - i)
        kick[i : i + n] += np.sin(2 * np.pi * 60 * t[:n]) * np.exp(-t[:n] * 30)
    bass = 0.3 * np.sin(2 * np.pi * np.where((t % 2) < 1, 55.0, 73.4) * t)
    pad = 0.1 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.sin(2 * np.pi * 660 * t)
    mono = 0.5 * kick + bass + pad
    stereo = np.stack([mono, 0.9 * mono], axis=1).astype(np.float32) * 0.6
    buf = io.BytesIO()
    sf.write(buf, stereo, sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def synth_style(seconds: float = 2.0, sr: int = 44100, f0: float = 220.0) -> bytes:
    t = np.arange(int(seconds * sr)) / sr
    tone = 0.4 * np.sign(np.sin(2 * np.pi * f0 * t)) * np.exp(-((t % 0.5) * 6))
    buf = io.BytesIO()
    sf.write(buf, tone.astype(np.float32), sr, format="FLAC")
    return buf.getvalue()


def stem_flac(seconds: float, f0: float, sr: int = 44100) -> bytes:
    """A stereo 44.1 kHz FLAC tone, as separation stores a stem."""
    t = np.arange(int(seconds * sr)) / sr
    tone = (0.2 * np.sin(2 * np.pi * f0 * t)).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, np.stack([tone, tone], axis=1), sr, format="FLAC", subtype="PCM_24")
    return buf.getvalue()


def insert_ready_project(tenant_id: str, *, seconds: float = 1.0, name: str = "ready") -> Any:
    """A `ready` project with four stems in S3, written straight to the stores the stack uses (the
    separation and analysis stages are someone else's subject; these tests need a project to mix)."""
    from audiomixer import aws
    from audiomixer.settings import STEMS, get_settings
    from audiomixer.store import blobs, keys
    from audiomixer.store.models import Project

    settings = get_settings()
    project = Project(
        tenant_id,
        keys.new_id(),
        name=name,
        status="ready",
        stage="ready",
        progress=100,
        source_kind="song",
        stems=dict.fromkeys(STEMS, True),
        duration_s=seconds,
    )
    project.save()
    s3 = aws.client("s3")
    for i, stem in enumerate(STEMS):
        key = keys.stem(tenant_id, project.project_id, stem)
        blobs.write(s3, settings.bucket, key, stem_flac(seconds, 110.0 * (i + 1)), "audio/flac")
    return project
