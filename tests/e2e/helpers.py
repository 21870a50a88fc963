"""Test audio for the end-to-end suite."""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf


def synth_song(seconds: float = 6.0, sr: int = 44100) -> bytes:
    """Kick-like clicks, a bass line and a pad: something every stem can hold."""
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
