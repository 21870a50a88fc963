"""Fold decoded audio to stereo at the service's rate, and encode outputs (libsndfile).

Decoding and its checks are in :mod:`audiomixer.dsp.audio_io`, which re-exports these names.
"""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import soundfile as sf

if TYPE_CHECKING:
    from audiomixer.dsp.audio_io import AudioInfo, DecodedAudio

# --------------------------------------------------------------------------------------------------
# Normalise
# --------------------------------------------------------------------------------------------------

# Left/right gains per speaker position (ITU-R BS.775 style downmix; LFE dropped).
_G = 1.0 / math.sqrt(2.0)
_POSITION_GAINS: dict[str, tuple[float, float]] = {
    "FL": (1.0, 0.0),
    "FR": (0.0, 1.0),
    "FC": (_G, _G),
    "LFE": (0.0, 0.0),
    "BL": (_G, 0.0),
    "BR": (0.0, _G),
    "FLC": (1.0, 0.0),
    "FRC": (0.0, 1.0),
    "BC": (0.5, 0.5),
    "SL": (_G, 0.0),
    "SR": (0.0, _G),
    "TC": (0.5, 0.5),
    "TFL": (_G, 0.0),
    "TFC": (0.5, 0.5),
    "TFR": (0.0, _G),
    "TBL": (_G, 0.0),
    "TBC": (0.5, 0.5),
    "TBR": (0.0, _G),
}
# Default orders when the file names no positions (WAV without a channel mask, AIFF): SMPTE's.
_DEFAULT_ORDER: dict[int, tuple[str, ...]] = {
    3: ("FL", "FR", "FC"),
    4: ("FL", "FR", "BL", "BR"),
    5: ("FL", "FR", "FC", "BL", "BR"),
    6: ("FL", "FR", "FC", "LFE", "BL", "BR"),
    7: ("FL", "FR", "FC", "LFE", "BC", "SL", "SR"),
    8: ("FL", "FR", "FC", "LFE", "BL", "BR", "SL", "SR"),
}


def _channel_positions(info: AudioInfo) -> list[str]:
    # FFmpeg names each channel (and reorders Vorbis/Opus/AAC channels to its own order).
    n = info.channels
    if len(info.positions) == n and all(p in _POSITION_GAINS for p in info.positions):
        return list(info.positions)
    if n in _DEFAULT_ORDER:
        return list(_DEFAULT_ORDER[n])
    # Unknown layout: alternate channels left and right.
    return ["SL" if i % 2 == 0 else "SR" for i in range(n)]


def downmix_matrix(info: AudioInfo) -> np.ndarray:
    """(channels, 2) gains that fold the file's channels to stereo."""
    if info.channels == 1:
        return np.array([[1.0, 1.0]], dtype=np.float32)
    if info.channels == 2:
        return np.eye(2, dtype=np.float32)
    return np.array([_POSITION_GAINS[p] for p in _channel_positions(info)], dtype=np.float32)


def normalise(decoded: DecodedAudio, target_sr: int = 44100) -> np.ndarray:
    """(frames, 2) float32 at ``target_sr``: mono is duplicated, more channels are folded down by speaker
    position, then resampled. If the result would clip (downmix sums, resampling overshoot, hot float
    files) the whole signal is scaled to peak at full scale rather than clipped."""
    x = decoded.samples
    if x.ndim != 2 or x.shape[1] != decoded.info.channels:
        raise ValueError(f"samples must be (frames, {decoded.info.channels}), got {x.shape}")
    if x.shape[1] == 2:
        stereo = np.ascontiguousarray(x, dtype=np.float32)
    elif x.shape[1] == 1:
        stereo = np.repeat(x.astype(np.float32, copy=False), 2, axis=1)
    else:
        stereo = (x.astype(np.float32, copy=False) @ downmix_matrix(decoded.info)).astype(
            np.float32, copy=False
        )
    from audiomixer.dsp.audio_io import resample

    out = resample(stereo, decoded.sample_rate, target_sr)
    out = np.ascontiguousarray(out, dtype=np.float32)
    # Always hand back a fresh array (callers may modify it); work in place once we own one.
    if np.shares_memory(out, x):
        out = out.copy()
    peak = float(np.abs(out).max()) if out.size else 0.0
    if peak > 1.0:
        out *= np.float32(1.0 / peak)
    np.clip(out, -1.0, 1.0, out=out)
    return out


# --------------------------------------------------------------------------------------------------
# Encode and hash
# --------------------------------------------------------------------------------------------------

_ENCODINGS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    # fmt: (libsndfile format, default subtype, allowed subtypes)
    "wav": ("WAV", "PCM_16", ("PCM_16", "PCM_24", "PCM_32", "FLOAT")),
    "flac": ("FLAC", "PCM_24", ("PCM_16", "PCM_24")),
    "mp3": ("MP3", "MPEG_LAYER_III", ("MPEG_LAYER_III",)),
    "ogg": ("OGG", "VORBIS", ("VORBIS", "OPUS")),
    "aiff": ("AIFF", "PCM_16", ("PCM_16", "PCM_24", "FLOAT")),
}
_ENCODE_BLOCK_FRAMES = 1 << 14
_MP3_RATES_OUT = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)


def encode_audio(samples: np.ndarray, sample_rate: int, fmt: str, subtype: str | None = None) -> bytes:
    """Encode (frames,) or (frames, channels) float samples in [-1, 1]. wav: PCM_16 (default) or FLOAT;
    flac: PCM_24; mp3: 320 kbit/s CBR; ogg: Vorbis. Integer and lossy outputs are clipped to full scale
    (libsndfile would wrap around instead)."""
    if fmt not in _ENCODINGS:
        raise ValueError(f"unknown output format {fmt!r}; choose one of {sorted(_ENCODINGS)}")
    sf_format, default_subtype, allowed = _ENCODINGS[fmt]
    subtype = subtype or default_subtype
    if subtype not in allowed:
        raise ValueError(f"{fmt} cannot be written as {subtype}; choose one of {allowed}")
    x = np.asarray(samples)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"samples must be (frames,) or (frames, channels), got {np.shape(samples)}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"samples must be floating point, got {x.dtype}")
    if not np.isfinite(x).all():
        raise ValueError("samples contain NaN or infinity")
    if fmt == "mp3" and (x.shape[1] > 2 or sample_rate not in _MP3_RATES_OUT):
        raise ValueError(f"mp3 takes 1-2 channels at {_MP3_RATES_OUT} Hz; got {x.shape[1]} at {sample_rate}")
    if fmt == "ogg" and subtype == "OPUS" and sample_rate not in (8000, 12000, 16000, 24000, 48000):
        raise ValueError("Opus takes 8, 12, 16, 24 or 48 kHz")
    if subtype not in ("FLOAT",):
        x = np.clip(x, -1.0, 1.0)
    x = np.ascontiguousarray(x, dtype=np.float32)
    kwargs: dict[str, Any] = {}
    if fmt == "mp3":
        kwargs = {"bitrate_mode": "CONSTANT", "compression_level": 0.0}
    elif fmt == "ogg" and subtype == "VORBIS":
        kwargs = {"compression_level": 0.3}
    buf = io.BytesIO()
    with sf.SoundFile(buf, "w", sample_rate, x.shape[1], subtype, format=sf_format, **kwargs) as f:
        # In blocks: libvorbis alloca()s the whole pending buffer, so one big write overflows the stack
        # and kills the process (libsndfile#1095, python-soundfile#426).
        for start in range(0, x.shape[0], _ENCODE_BLOCK_FRAMES):
            f.write(x[start : start + _ENCODE_BLOCK_FRAMES])
    return buf.getvalue()
