"""Style-sound analysis: a grain table with per-grain descriptors (loudness, f0, spectral centroid,
flatness, MFCCs), as corpus-based synthesis (CataRT) keeps for its units.

Grains sit on a regular hop (half a grain) plus one grain at each detected onset, so a one-shot sample
pack offers its hits transient-aligned. Descriptors come from the 22.05 kHz frame features of
`analysis`, aggregated over the frames each grain covers; loudness and peak are exact, from the samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..mix_settings import GRAIN_MS_DEFAULT, GRAIN_MS_MAX, GRAIN_MS_MIN
from .analysis import (
    ANALYSIS_SR,
    HOP,
    N_MFCC,
    Kind,
    _fl,
    add_leading_onset,
    classify,
    db,
    detect_onsets,
    frame_features,
    noisy_share,
    pitched_share,
    refine_onsets,
    sustain_db,
    to_mono,
    voicing,
)
from .audio_io import resample


@dataclass
class GrainTable:
    """Grains of one style sound; positions and lengths are in samples at `sample_rate`."""

    sample_rate: int
    n_samples: int
    grain_ms: float
    starts: np.ndarray  # int64
    lengths: np.ndarray  # int64
    loudness_db: np.ndarray  # RMS dBFS of the grain
    peak: np.ndarray  # linear peak |x|
    peak_offset: np.ndarray  # samples from start to the peak within the first 50 ms
    f0_hz: np.ndarray  # 0 if unvoiced
    centroid_hz: np.ndarray
    flatness: np.ndarray
    mfcc: np.ndarray  # (n_grains, N_MFCC)
    onset_aligned: np.ndarray  # bool: grain starts at a detected transient
    kind: Kind

    @property
    def n_grains(self) -> int:
        return int(self.starts.size)

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.sample_rate

    def summary(self) -> dict[str, Any]:
        voiced = self.f0_hz[self.f0_hz > 0]
        return {
            "duration_s": round(self.duration_s, 4),
            "n_grains": self.n_grains,
            "median_f0_hz": round(float(np.median(voiced)), 2) if voiced.size else 0.0,
            "mean_centroid_hz": round(float(np.mean(self.centroid_hz)), 1) if self.n_grains else 0.0,
            "kind": self.kind,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "sample_rate": self.sample_rate,
            "n_samples": self.n_samples,
            "grain_ms": self.grain_ms,
            "starts": [int(v) for v in self.starts],
            "lengths": [int(v) for v in self.lengths],
            "loudness_db": _fl(self.loudness_db, 3),
            "peak": _fl(self.peak, 6),
            "peak_offset": [int(v) for v in self.peak_offset],
            "f0_hz": _fl(self.f0_hz, 3),
            "centroid_hz": _fl(self.centroid_hz, 1),
            "flatness": _fl(self.flatness, 6),
            "mfcc": [_fl(row, 4) for row in self.mfcc],
            "onset_aligned": [bool(v) for v in self.onset_aligned],
            "kind": self.kind,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GrainTable:
        kind = d["kind"]
        if kind not in ("percussive", "tonal"):
            raise ValueError(f"bad kind {kind!r}")
        mfcc = np.asarray(d["mfcc"], np.float32).reshape(len(d["starts"]), -1)
        return cls(
            sample_rate=int(d["sample_rate"]),
            n_samples=int(d["n_samples"]),
            grain_ms=float(d["grain_ms"]),
            starts=np.asarray(d["starts"], np.int64),
            lengths=np.asarray(d["lengths"], np.int64),
            loudness_db=np.asarray(d["loudness_db"], np.float32),
            peak=np.asarray(d["peak"], np.float32),
            peak_offset=np.asarray(d["peak_offset"], np.int64),
            f0_hz=np.asarray(d["f0_hz"], np.float32),
            centroid_hz=np.asarray(d["centroid_hz"], np.float32),
            flatness=np.asarray(d["flatness"], np.float32),
            mfcc=mfcc,
            onset_aligned=np.asarray(d["onset_aligned"], bool),
            kind=kind,
        )


def mfcc_from_mel_db(mel_db: np.ndarray, n_mfcc: int = N_MFCC) -> np.ndarray:
    """(n_mels, frames) log-mel -> (n_mfcc, frames), orthonormal DCT-II as librosa.feature.mfcc."""
    from scipy.fft import dct

    return np.asarray(dct(mel_db, axis=0, type=2, norm="ortho")[:n_mfcc], np.float32)


def _grain_starts(n: int, length: int, hop: int, onsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    regular = np.arange(0, max(1, n - length + 1), hop, dtype=np.int64)
    onsets = np.unique(np.clip(onsets.astype(np.int64), 0, max(0, n - 1)))
    starts = np.concatenate([regular, onsets])
    aligned = np.concatenate([np.zeros(regular.size, bool), np.ones(onsets.size, bool)])
    order = np.argsort(starts, kind="stable")
    return starts[order], aligned[order]


def analyse_style_sound(
    samples: np.ndarray, sample_rate: int, grain_ms: float = GRAIN_MS_DEFAULT, *, hop_ratio: float = 0.5
) -> GrainTable:
    """Cut a style sound into grains of `grain_ms` (hop `hop_ratio` of a grain, plus one at each onset)
    and describe each grain."""
    import librosa

    if not GRAIN_MS_MIN <= grain_ms <= GRAIN_MS_MAX:
        raise ValueError(f"grain_ms must be within {GRAIN_MS_MIN}..{GRAIN_MS_MAX}, got {grain_ms}")
    mono = to_mono(samples)
    n = mono.size
    if n == 0:
        raise ValueError("empty style sound")
    length = max(1, round(grain_ms * 1e-3 * sample_rate))
    length = min(length, n)
    hop = max(1, round(length * hop_ratio))

    y = resample(mono, sample_rate, ANALYSIS_SR)
    feats = frame_features(y, ANALYSIS_SR)
    hop_s = HOP / ANALYSIS_SR
    active = db(feats.rms) > -60.0
    peaks, onset_env = detect_onsets(y, active)
    back = librosa.onset.onset_backtrack(peaks, onset_env) if peaks.size else peaks
    onset_s = refine_onsets(mono, sample_rate, peaks * hop_s, back * hop_s)
    onset_s = add_leading_onset(mono, sample_rate, onset_s, -60.0)
    starts, aligned = _grain_starts(n, length, hop, np.round(onset_s * sample_rate))
    lengths = np.minimum(length, n - starts)

    # Exact RMS and peak per grain from cumulative sums / slices.
    csum = np.concatenate([[0.0], np.cumsum(mono.astype(np.float64) ** 2)])
    ms = (csum[starts + lengths] - csum[starts]) / np.maximum(lengths, 1)
    loud = db(np.sqrt(ms))
    peak_win = max(1, int(0.05 * sample_rate))
    peak = np.empty(starts.size, np.float32)
    peak_off = np.empty(starts.size, np.int64)
    for i, (s, ln) in enumerate(zip(starts, lengths, strict=True)):
        seg = np.abs(mono[s : s + min(int(ln), peak_win)])
        k = int(seg.argmax()) if seg.size else 0
        peak_off[i] = k
        peak[i] = float(np.abs(mono[s : s + ln]).max(initial=0.0))

    # Frame-level descriptors averaged over each grain's frames (energy-weighted where it matters).
    f0_frames, prob = voicing(feats)
    mfcc_frames = mfcc_from_mel_db(feats.mel_db)
    frame_pos = np.arange(feats.n_frames) * HOP * sample_rate / ANALYSIS_SR
    first = np.searchsorted(frame_pos, starts, side="left")
    last = np.searchsorted(frame_pos, starts + lengths, side="left")
    last = np.maximum(last, first + 1)
    first = np.minimum(first, feats.n_frames - 1)
    last = np.minimum(last, feats.n_frames)
    first = np.minimum(first, last - 1)
    energy = feats.rms.astype(np.float64) ** 2 + 1e-20
    n_g = starts.size
    cen = np.empty(n_g, np.float32)
    flat = np.empty(n_g, np.float32)
    f0 = np.zeros(n_g, np.float32)
    mfcc = np.empty((n_g, N_MFCC), np.float32)
    for i in range(n_g):
        sl = slice(int(first[i]), int(last[i]))
        w = energy[sl]
        wsum = w.sum()
        cen[i] = float((feats.centroid_hz[sl] * w).sum() / wsum)
        flat[i] = float((feats.flatness[sl] * w).sum() / wsum)
        mfcc[i] = (mfcc_frames[:, sl] * w).sum(axis=1) / wsum
        voiced = prob[sl] >= 0.5
        if voiced.mean() >= 0.5:
            f0[i] = float(np.median(f0_frames[sl][voiced]))

    kind = classify(
        sustain_db(feats.rms, active, hop_s),
        pitched_share(feats.aperiodicity, active),
        noisy_share(feats.flatness, active),
    )
    return GrainTable(
        sample_rate=int(sample_rate),
        n_samples=int(n),
        grain_ms=float(grain_ms),
        starts=starts,
        lengths=lengths.astype(np.int64),
        loudness_db=loud.astype(np.float32),
        peak=peak,
        peak_offset=peak_off,
        f0_hz=f0,
        centroid_hz=cen,
        flatness=flat,
        mfcc=mfcc,
        onset_aligned=aligned,
        kind=kind,
    )
