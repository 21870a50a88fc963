"""The measures of `audiomixer bench quality` (issue 11), computed by tools independent of the engine
they judge: mir_eval for onsets (+-50 ms) and pitch (50 cents), librosa's pYIN and onset detector,
MFCCs 1-13, and a true-peak meter made of `scipy.signal.resample_poly` (not the limiter's own).

Every function takes audio as (n,) or (n, channels) float arrays and times in seconds."""

from __future__ import annotations

import numpy as np

# Onset F1 (+-50 ms, mir_eval) is the dsp tests' measure too: one implementation.
from audiomixer_tools.metrics import onset_f1

__all__ = [
    "LEAD_FMAX_HZ",
    "LEAD_FMIN_HZ",
    "PYIN_FMAX_HZ",
    "PYIN_FMIN_HZ",
    "PYIN_SR",
    "SILENT_DB",
    "STAYS_SILENT_DB",
    "envelope_correlation",
    "frame_rms_db",
    "librosa_onsets",
    "mfcc_distance",
    "mfcc_mean",
    "onset_f1",
    "pitch_scores",
    "pyin_track",
    "silence_kept",
    "true_peak_dbtp",
]

PYIN_SR = 22050
PYIN_FMIN_HZ = 30.0  # pYIN has no default range; this one holds E1 (41 Hz)
PYIN_FMAX_HZ = 500.0  # B4: above anything a bass plays, with room for an octave error to show
LEAD_FMIN_HZ, LEAD_FMAX_HZ = 65.0, 1500.0  # a lead or a voice
SILENT_DB = -60.0  # a source frame this quiet is silence...
STAYS_SILENT_DB = -50.0  # ...and the rendered frame must stay below this
CENTS_TOLERANCE = 50.0


def _mono(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x if x.ndim == 1 else x.mean(axis=1)


def _channels(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x[:, None] if x.ndim == 1 else x


def pitch_scores(
    ref_times_s: np.ndarray, ref_f0_hz: np.ndarray, est_times_s: np.ndarray, est_f0_hz: np.ndarray
) -> tuple[float, float]:
    """(raw pitch accuracy, voicing recall) of an f0 track against a reference, mir_eval.melody on the
    reference's time grid. 0 Hz means unvoiced; raw pitch accuracy counts an unvoiced estimate on a
    voiced reference frame as wrong, an estimate within 50 cents as right."""
    import mir_eval

    est_f0 = np.nan_to_num(np.asarray(est_f0_hz, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    ref_v, ref_c, est_v, est_c = mir_eval.melody.to_cent_voicing(
        np.asarray(ref_times_s, np.float64),
        np.asarray(ref_f0_hz, np.float64),
        np.asarray(est_times_s, np.float64),
        np.abs(est_f0),
    )
    if not np.any(ref_v):
        return float("nan"), float("nan")
    rpa = mir_eval.melody.raw_pitch_accuracy(ref_v, ref_c, est_v, est_c, cent_tolerance=CENTS_TOLERANCE)
    recall, _false_alarm = mir_eval.melody.voicing_measures(ref_v, est_v)
    return float(rpa), float(recall)


def pyin_track(
    x: np.ndarray, sample_rate: int, fmin_hz: float = PYIN_FMIN_HZ, fmax_hz: float = PYIN_FMAX_HZ
) -> tuple[np.ndarray, np.ndarray]:
    """(times_s, f0_hz with 0 where unvoiced) of `librosa.pyin` with its default settings at 22.05 kHz,
    over fmin_hz..fmax_hz (pYIN needs a range; its defaults do the rest)."""
    import librosa

    y = _mono(x)
    if sample_rate != PYIN_SR:
        y = librosa.resample(y, orig_sr=sample_rate, target_sr=PYIN_SR)
    f0, voiced, _prob = librosa.pyin(y, fmin=fmin_hz, fmax=fmax_hz, sr=PYIN_SR)
    times = librosa.times_like(f0, sr=PYIN_SR)
    return times, np.where(voiced, np.nan_to_num(f0, nan=0.0), 0.0)


def librosa_onsets(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """Onset times (s) by `librosa.onset.onset_detect` with its default settings."""
    import librosa

    return np.asarray(librosa.onset.onset_detect(y=_mono(x), sr=sample_rate, units="time"), np.float64)


def frame_rms_db(
    x: np.ndarray, sample_rate: int, frame_s: float = 0.046, hop_s: float = 0.0116
) -> np.ndarray:
    """RMS level (dBFS) per frame of the loudest channel (a channel left on alone is not silence)."""
    import librosa

    frame = max(1, round(frame_s * sample_rate))
    hop = max(1, round(hop_s * sample_rate))
    levels = []
    for ch in _channels(x).T:
        y = np.pad(ch, (0, max(0, frame - ch.size)))
        levels.append(librosa.feature.rms(y=y, frame_length=frame, hop_length=hop, center=False)[0])
    rms = np.max(levels, axis=0)
    return np.asarray(20.0 * np.log10(np.maximum(rms, 1e-10)), np.float64)


def envelope_correlation(a: np.ndarray, b: np.ndarray, sample_rate: int, smooth_s: float = 0.05) -> float:
    """Pearson correlation of the linear RMS envelopes of the two signals' mono downmixes (frames of
    smooth_s, hop a quarter of that)."""
    import librosa

    frame = max(1, round(smooth_s * sample_rate))
    hop = max(1, frame // 4)
    ea = librosa.feature.rms(y=_mono(a), frame_length=frame, hop_length=hop, center=False)[0]
    eb = librosa.feature.rms(y=_mono(b), frame_length=frame, hop_length=hop, center=False)[0]
    n = min(ea.size, eb.size)
    ea, eb = ea[:n].astype(np.float64), eb[:n].astype(np.float64)
    if n < 2 or ea.std() == 0 or eb.std() == 0:
        return 0.0
    return float(np.corrcoef(ea, eb)[0, 1])


def mfcc_mean(x: np.ndarray, sample_rate: int, silence_db: float = SILENT_DB) -> np.ndarray:
    """Mean of MFCC coefficients 1-13 (c0, the loudness, left out) over the frames above silence_db."""
    import librosa

    y = _mono(x)
    mf = librosa.feature.mfcc(y=y, sr=sample_rate, n_mfcc=14, n_fft=2048, hop_length=512)[1:]
    rms = librosa.feature.rms(y=y, frame_length=2048, hop_length=512)[0][: mf.shape[1]]
    active = 20.0 * np.log10(np.maximum(rms, 1e-10)) > silence_db
    if not active.any():
        active[:] = True
    return np.asarray(mf[:, active].mean(axis=1), np.float64)


def mfcc_distance(
    a: np.ndarray, b: np.ndarray, sample_rate_a: int, sample_rate_b: int | None = None
) -> float:
    """Euclidean distance between the mean MFCC (1-13) vectors of two sounds: a coarse timbre distance."""
    return float(np.linalg.norm(mfcc_mean(a, sample_rate_a) - mfcc_mean(b, sample_rate_b or sample_rate_a)))


def silence_kept(
    source: np.ndarray,
    rendered: np.ndarray,
    sample_rate: int,
    silent_db: float = SILENT_DB,
    stays_silent_db: float = STAYS_SILENT_DB,
) -> float:
    """Share of the frames where the source is below silent_db in which the rendered stem stays below
    stays_silent_db; nan when the source is never silent."""
    src = frame_rms_db(source, sample_rate)
    out = frame_rms_db(rendered, sample_rate)
    n = min(src.size, out.size)
    silent = src[:n] < silent_db
    if not silent.any():
        return float("nan")
    return float(np.mean(out[:n][silent] < stays_silent_db))


def true_peak_dbtp(x: np.ndarray, factors: tuple[int, ...] = (4, 8), block: int = 1 << 18) -> float:
    """True peak (dBTP) of every channel, by oversampling with `scipy.signal.resample_poly` at each
    factor and taking the largest magnitude. Blocks overlap by the filter's reach, so the result does not
    depend on the block size."""
    from scipy.signal import resample_poly

    peak = 0.0
    pad = 512  # input samples each side: more than resample_poly's filter reaches at these factors
    for ch in _channels(x).T.astype(np.float64):
        peak = max(peak, float(np.max(np.abs(ch), initial=0.0)))
        for f in factors:
            for start in range(0, ch.size, block):
                lo, hi = max(0, start - pad), min(ch.size, start + block + pad)
                up = resample_poly(ch[lo:hi], f, 1)
                keep = up[(start - lo) * f : (start - lo + min(block, ch.size - start)) * f]
                peak = max(peak, float(np.max(np.abs(keep), initial=0.0)))
    return float(20.0 * np.log10(max(peak, 1e-10)))
