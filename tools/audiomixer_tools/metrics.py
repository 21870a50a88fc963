"""Quality metrics for analysis and rendering: onset F1 and raw pitch accuracy (mir_eval), envelope
correlation, MFCC timbre distance, true peak and a silence check. Used by the benchmarks and the tests
only, so they live here rather than in the shipped audiomixer.dsp."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audiomixer.dsp.analysis import SILENCE_DB, db, to_mono
from audiomixer.dsp.mixer import true_peak_dbtp

__all__ = [
    "SilenceCheck",
    "envelope_correlation",
    "frame_rms_db",
    "mfcc_distance",
    "mfcc_mean",
    "onset_f1",
    "raw_pitch_accuracy",
    "silence_check",
    "true_peak_dbtp",
]


def onset_f1(reference_s: np.ndarray, estimated_s: np.ndarray, window_s: float = 0.05) -> float:
    """F-measure of onset times within +-window_s (mir_eval.onset.f_measure)."""
    import mir_eval

    ref = np.sort(np.asarray(reference_s, np.float64))
    est = np.sort(np.asarray(estimated_s, np.float64))
    if ref.size == 0 and est.size == 0:
        return 1.0
    if ref.size == 0 or est.size == 0:
        return 0.0
    f, _p, _r = mir_eval.onset.f_measure(ref, est, window=window_s)
    return float(f)


def raw_pitch_accuracy(
    ref_times_s: np.ndarray, ref_f0_hz: np.ndarray, est_times_s: np.ndarray, est_f0_hz: np.ndarray
) -> float:
    """Share of the reference's voiced frames whose estimate is within 50 cents (mir_eval.melody);
    an estimate of 0 Hz (unvoiced) counts as wrong."""
    import mir_eval

    ref_v, ref_c, est_v, est_c = mir_eval.melody.to_cent_voicing(
        np.asarray(ref_times_s, np.float64),
        np.asarray(ref_f0_hz, np.float64),
        np.asarray(est_times_s, np.float64),
        np.asarray(est_f0_hz, np.float64),
    )
    return float(mir_eval.melody.raw_pitch_accuracy(ref_v, ref_c, est_v, est_c, cent_tolerance=50))


def frame_rms_db(
    x: np.ndarray, sample_rate: int, frame_s: float = 0.046, hop_s: float = 0.0116
) -> np.ndarray:
    """RMS level (dBFS) of the mono downmix on non-centred frames."""
    import librosa

    y = to_mono(x)
    frame = max(1, round(frame_s * sample_rate))
    hop = max(1, round(hop_s * sample_rate))
    if y.size < frame:
        y = np.pad(y, (0, frame - y.size))
    rms = librosa.feature.rms(y=y, frame_length=frame, hop_length=hop, center=False)[0]
    return db(rms)


def envelope_correlation(a: np.ndarray, b: np.ndarray, sample_rate: int, smooth_s: float = 0.05) -> float:
    """Pearson correlation of the two signals' linear RMS envelopes (frames of smooth_s)."""
    ea = 10 ** (frame_rms_db(a, sample_rate, smooth_s, smooth_s / 4) / 20.0)
    eb = 10 ** (frame_rms_db(b, sample_rate, smooth_s, smooth_s / 4) / 20.0)
    n = min(ea.size, eb.size)
    ea, eb = ea[:n], eb[:n]
    if n < 2 or ea.std() == 0 or eb.std() == 0:
        return 0.0
    return float(np.corrcoef(ea, eb)[0, 1])


def mfcc_mean(
    x: np.ndarray, sample_rate: int, *, n_mfcc: int = 13, silence_db: float = SILENCE_DB
) -> np.ndarray:
    """Mean MFCC vector (c1..c{n-1}, loudness term c0 dropped) over the non-silent frames."""
    import librosa

    y = to_mono(x)
    mf = librosa.feature.mfcc(y=y, sr=sample_rate, n_mfcc=n_mfcc, n_fft=2048, hop_length=512)
    rms = librosa.feature.rms(y=y, frame_length=2048, hop_length=512)[0]
    active = db(rms[: mf.shape[1]]) > silence_db
    if not active.any():
        active[:] = True
    return np.asarray(mf[1:, active].mean(axis=1), np.float64)


def mfcc_distance(a: np.ndarray, b: np.ndarray, sample_rate: int) -> float:
    """Euclidean distance between mean MFCC vectors: a coarse timbre distance."""
    return float(np.linalg.norm(mfcc_mean(a, sample_rate) - mfcc_mean(b, sample_rate)))


@dataclass
class SilenceCheck:
    n_silent_frames: int
    max_db_in_silence: float  # level of the candidate in the reference's silent frames (-inf if none)

    def ok(self, limit_db: float = -50.0) -> bool:
        return self.max_db_in_silence <= limit_db


def silence_check(
    reference: np.ndarray, candidate: np.ndarray, sample_rate: int, threshold_db: float = SILENCE_DB
) -> SilenceCheck:
    """Level of `candidate` in the frames where `reference` is below threshold_db."""
    r = frame_rms_db(reference, sample_rate)
    c = frame_rms_db(candidate, sample_rate)
    n = min(r.size, c.size)
    silent = r[:n] < threshold_db
    worst = float(c[:n][silent].max()) if silent.any() else float("-inf")
    return SilenceCheck(int(silent.sum()), worst)
