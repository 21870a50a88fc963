"""Style-sound analysis: a grain table with per-grain descriptors (loudness, f0, spectral centroid,
flatness, MFCCs), as corpus-based synthesis (CataRT) keeps for its units.

Grains sit on a regular hop (half a grain) plus one grain at each detected onset, so a one-shot sample
pack offers its hits transient-aligned. Descriptors come from the 22.05 kHz frame features of
`analysis`, aggregated over the frames each grain covers; loudness and peak are exact, from the samples.
A grain's f0 is the one note it holds, or 0: a grain across a note change, over a chord, or with an
attack inside it is no unit for pitch mapping.
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
    SILENCE_DB,
    Kind,
    _fl,
    add_leading_onset,
    classify,
    db,
    detect_onsets,
    frame_features,
    kind_features,
    refine_onsets,
    to_mono,
    voicing,
)
from .audio_io import resample

# A grain holds one pitch when this share of its analysis frames are voiced within this many cents of
# their median (vibrato passes; a step of a semitone or more, or a rest, does not).
ONE_PITCH_SHARE = 0.75
ONE_PITCH_CENTS = 80.0
# A grain's fundamental is measured over this many periods (the harmonics fall on the window's nulls)...
FUNDAMENTAL_PERIODS = 4.0
# ...and a grain whose "pitch" carries less than this share of its amplitude holds no note at that pitch:
# two notes a fourth or a fifth apart (a legato overlap, a reverb tail) are periodic at their common
# subharmonic, which sounds in neither (measured: notes 0.38-0.92, such chords 0.00-0.01).
MIN_FUNDAMENTAL_SHARE = 0.1
# An attack further than this share of a grain's length from both its ends is inside the grain.
ATTACK_INSIDE_MARGIN = 0.1


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
    f0_hz: np.ndarray  # 0 if the grain holds no single pitch (unvoiced, or across a note change)
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


def fundamental(
    x: np.ndarray,
    positions: np.ndarray,
    f0_hz: np.ndarray,
    sample_rate: int,
    *,
    periods: float = FUNDAMENTAL_PERIODS,
) -> tuple[np.ndarray, np.ndarray]:
    """Phase and strength of a mono sound's fundamental at each position: its projection onto a
    complex tone at `f0_hz` under a Hann window of `periods` periods, centred there (or as near as the
    sound's ends allow).

    Parameters
    ----------
    x : np.ndarray
        Mono sound, (n,) float.
    positions : np.ndarray
        Sample positions (float or int) where the fundamental is wanted.
    f0_hz : np.ndarray
        The sound's pitch at each position in Hz; 0 gives phase 0 and share 0.
    sample_rate : int
        Sample rate of `x` in Hz.
    periods : float
        Window length in periods of `f0_hz`.

    Returns
    -------
    phase : np.ndarray
        float64 phase in cycles (0..1): near each position, ``x`` has a fundamental
        ``cos(2 pi (f0 (t - position) / sample_rate + phase))``.
    share : np.ndarray
        float64 amplitude of that fundamental over the window's RMS amplitude times sqrt(2) (1 for a
        pure tone, about 0.78 for a sawtooth, 0 where the pitch is only a common subharmonic).
    """
    phase = np.zeros(len(positions), np.float64)
    share = np.zeros(len(positions), np.float64)
    n = x.size
    for i, (pos, f0) in enumerate(zip(np.asarray(positions, np.float64), np.asarray(f0_hz), strict=True)):
        if not f0 > 0:
            continue
        half_w = min(max(1, round(0.5 * periods * sample_rate / f0)), n // 2)
        if half_w < 1:
            continue
        # A whole window inside the sound (full harmonic rejection), phase referred to `pos`.
        centre = int(np.clip(round(pos), half_w, n - half_w))
        k = np.arange(centre - half_w, centre + half_w)
        w = np.hanning(2 * half_w + 1)[:-1]
        seg = np.asarray(x[k], np.float64) * w
        z = np.dot(seg, np.exp(-2j * np.pi * f0 * (k - pos) / sample_rate))
        phase[i] = np.mod(np.angle(z) / (2 * np.pi), 1.0)
        rms = np.sqrt(np.sum(seg**2) / max(np.sum(w**2), 1e-30))
        share[i] = 2.0 * abs(z) / w.sum() / (np.sqrt(2.0) * rms) if rms > 0 else 0.0
    return phase, share


def _one_pitch(
    f0_hz: np.ndarray,
    voiced_prob: np.ndarray,
    *,
    share: float = ONE_PITCH_SHARE,
    max_cents: float = ONE_PITCH_CENTS,
) -> float:
    """The pitch (Hz) a grain holds, from its frames' f0 and voicing: the median of the voiced frames
    when at least `share` of all its frames are voiced within `max_cents` of it, else 0. A grain across
    a note change (the tail of one note, the attack of the next) holds two pitches, and read as one it
    sounds both: it is no unit for pitch mapping."""
    voiced = (voiced_prob >= 0.5) & (f0_hz > 0)
    if not voiced.any():
        return 0.0
    pitch = float(np.median(f0_hz[voiced]))
    cents = 1200.0 * np.abs(np.log2(np.where(voiced, f0_hz, pitch) / pitch))
    near = voiced & (cents <= max_cents)
    return pitch if float(near.mean()) >= share else 0.0


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
    majority_f0 = np.zeros(n_g, np.float32)
    mfcc = np.empty((n_g, N_MFCC), np.float32)
    for i in range(n_g):
        sl = slice(int(first[i]), int(last[i]))
        w = energy[sl]
        wsum = w.sum()
        cen[i] = float((feats.centroid_hz[sl] * w).sum() / wsum)
        flat[i] = float((feats.flatness[sl] * w).sum() / wsum)
        mfcc[i] = (mfcc_frames[:, sl] * w).sum(axis=1) / wsum
        f0[i] = _one_pitch(f0_frames[sl], prob[sl])
        majority_f0[i] = _one_pitch(f0_frames[sl], prob[sl], share=0.5, max_cents=np.inf)
    if not f0.any():
        # No steady note anywhere (a fast arpeggio longer than the grain): each grain's majority pitch
        # is still better for pitch mapping than none.
        f0 = majority_f0
    pitched = np.nonzero(f0 > 0)[0]
    _, share = fundamental(mono, starts[pitched] + lengths[pitched] / 2, f0[pitched], sample_rate)
    f0[pitched[share < MIN_FUNDAMENTAL_SHARE]] = 0.0
    # A grain with an attack inside it holds two notes even at one pitch (a repeated note restarts at
    # another phase): only grains from an attack on, or between attacks, are units for pitch mapping.
    onsets = np.sort(np.round(onset_s * sample_rate))
    if onsets.size:
        margin = ATTACK_INSIDE_MARGIN * lengths
        after = onsets[np.minimum(np.searchsorted(onsets, starts + margin, side="right"), onsets.size - 1)]
        f0[(after > starts + margin) & (after < starts + lengths - margin)] = 0.0

    kind = classify(*kind_features(feats, SILENCE_DB))
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
