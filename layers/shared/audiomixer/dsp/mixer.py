"""Mixing: per-stem volumes, optional loudness target (pyloudnorm, BS.1770), and a look-ahead
true-peak limiter.

True peak is measured by 4x oversampling with the interpolator `scipy.signal.resample_poly` designs by
default (81 taps, Kaiser beta 5: phase 0 is the original samples, so only three 20-tap phases are
computed), so that the limiter's own meter reads what an independent polyphase meter reads; a
shorter or sharper filter under-read inter-sample peaks by up to 0.8 dB after heavy limiting.
Filtering is the expensive part, so it is done only where the answer matters, with rigorous bounds
deciding where: no interpolated point exceeds sum|h_p| times the largest nearby sample, and a 6-tap
estimate is off by at most the left-out taps' sum|h| times it.

The limiter works on 0.7 ms block maxima: gain reduction needed per block, a forward-looking max
(look-ahead), a linear-in-dB release computed with a running maximum (no per-sample loop), and a causal
moving-average attack that reaches the needed reduction by each peak. The output's true peak is then
bounded from the input's and the gain's smoothness; only blocks where that bound is not enough are
measured again, and limited again if needed. Everything works on per-block maxima (two reductions over
a (blocks, BLOCK x channels) view) and the gain touches only the blocks it reduces: no full-length
per-sample envelope, gain curve or channel-major copy is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

import numpy as np
from scipy.ndimage import maximum_filter1d, uniform_filter1d
from scipy.signal import firwin

from ..mix_settings import VOLUME_MAX

_TAPS_PER_PHASE = 20  # resample_poly's default half-length is 10 input samples
BLOCK = 32
_SCREEN_TAPS = 6
LOOKAHEAD_MS = 5.0
RELEASE_DB_PER_S = 60.0
METER_MARGIN_DB = 0.15
PEAK_CHUNK_BLOCKS = 1 << 14


@lru_cache(maxsize=4)
def _phases(factor: int) -> tuple[np.ndarray, ...]:
    taps = factor * _TAPS_PER_PHASE + 1
    h = firwin(taps, 1.0 / factor, window=("kaiser", 5.0)) * factor
    return tuple(np.ascontiguousarray(h[p::factor][::-1], dtype=np.float32) for p in range(1, factor))


def _as_2d(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        return x[:, None]
    if x.ndim != 2:
        raise ValueError(f"expected (n,) or (n, channels) audio, got shape {x.shape}")
    return x


def _oversampled_abs_max(ch: np.ndarray, factor: int, taps: int = _TAPS_PER_PHASE) -> np.ndarray:
    """|x| maximum over each original sample and the interpolated points up to the next sample, with
    the central `taps` of each phase (all 12: exact; fewer: a cheap estimate, see _tail)."""
    best = np.abs(ch)
    trim = (_TAPS_PER_PHASE - taps) // 2
    half = taps // 2
    for h in _phases(factor):
        # Phase p between samples i and i+1 uses x[i-9 .. i+10]; 'full' output index i+10 holds it.
        hh = h[::-1][trim : _TAPS_PER_PHASE - trim]
        y = np.convolve(ch, hh, mode="full")[half : half + ch.size]
        np.maximum(best, np.abs(y, out=y), out=best)
    return best


@lru_cache(maxsize=8)
def _tail(factor: int, taps: int) -> float:
    """max_p of sum|h_p| over the taps left out by a `taps`-tap estimate: the estimate's error is at
    most this times the largest nearby |sample|."""
    trim = (_TAPS_PER_PHASE - taps) // 2
    return float(max(np.abs(np.r_[h[:trim], h[_TAPS_PER_PHASE - trim :]]).sum() for h in _phases(factor)))


@lru_cache(maxsize=4)
def _bound(factor: int) -> float:
    """max_p sum|h_p|: no interpolated point exceeds this times the largest nearby |sample|."""
    return float(max(np.abs(h).sum() for h in _phases(factor)))


def _factor(sample_rate: int) -> int:
    # BS.1770 oversamples to at least 176.4/192 kHz.
    return 4 if sample_rate < 88200 else 2


def _runs(mask: np.ndarray, merge_gap: int) -> list[tuple[int, int]]:
    """[start, stop) runs of True, merging runs separated by fewer than merge_gap False entries."""
    if not mask.any():
        return []
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, stops = np.nonzero(d == 1)[0], np.nonzero(d == -1)[0]
    out: list[tuple[int, int]] = []
    for a, b in zip(starts.tolist(), stops.tolist(), strict=True):
        if out and a - out[-1][1] < merge_gap:
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def _block_peak(x2: np.ndarray) -> np.ndarray:
    """Largest |sample| over every channel in each BLOCK (the last partial block included), from a
    (blocks, BLOCK * channels) view, |x| taken chunk by chunk (a bounded temporary; one reduction is
    twice as fast as a max and a min)."""
    n, n_ch = x2.shape
    full = n // BLOCK
    parts = []
    if full:
        rows = x2[: full * BLOCK].reshape(full, BLOCK * n_ch)
        peaks = np.empty(full, np.float32)
        for a in range(0, full, PEAK_CHUNK_BLOCKS):
            peaks[a : a + PEAK_CHUNK_BLOCKS] = np.abs(rows[a : a + PEAK_CHUNK_BLOCKS]).max(axis=1)
        parts.append(peaks)
    if n > full * BLOCK:
        tail = x2[full * BLOCK :]
        parts.append(np.array([max(float(tail.max()), -float(tail.min()))], np.float32))
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)


def true_peak_blocks(
    x: np.ndarray,
    sample_rate: int,
    threshold: float,
    *,
    upper_blocks: np.ndarray | None = None,
    sample_blocks: np.ndarray | None = None,
) -> np.ndarray:
    """True peak (max over channels and interpolated points) of each BLOCK of samples: exact wherever it
    could exceed `threshold`, elsewhere an upper bound <= threshold. Only blocks that could exceed it
    are filtered.

    Parameters
    ----------
    x : np.ndarray
        (n,) or (n, channels) audio.
    sample_rate : int
        Hz (sets the oversampling factor).
    threshold : float
        Linear level; blocks whose bound is under it are not filtered.
    upper_blocks : np.ndarray, optional
        A known upper bound per block; by default the rigorous one, sum|h_p| times the largest sample
        nearby.
    sample_blocks : np.ndarray, optional
        Largest |sample| per block (or an upper bound of it), when the caller has it.
    """
    x2 = _as_2d(x)
    n = x2.shape[0]
    f = _factor(sample_rate)
    if sample_blocks is None:
        sample_blocks = _block_peak(x2)
    # Largest |sample| in each block and its neighbours: covers every filter's 20-sample reach.
    x_near = maximum_filter1d(sample_blocks, 3, mode="constant")
    screen_default = upper_blocks is None
    if upper_blocks is None:
        upper_blocks = x_near * _bound(f)
    result = np.minimum(upper_blocks, max(threshold, 0.0)).astype(np.float32)
    cand = upper_blocks > threshold
    if not cand.any():
        return result
    # Blocks whose own samples come within 1 dB of the threshold would rarely pass the screen below:
    # filter them exactly at once. A given bound is already tight (a later limiter pass): no screening.
    near = sample_blocks > threshold * 10 ** (-1.0 / 20.0)
    sure = cand & near if screen_default else cand
    done = np.zeros_like(cand)
    # Merged runs: per-call overhead matters more than filtering a few extra blocks.
    for a, b in _runs(sure, merge_gap=16):
        s, e = a * BLOCK, min(n, b * BLOCK)
        result[a:b] = _block_max(_run_env(x2, s, e, f, _TAPS_PER_PHASE), BLOCK)
        done[a:b] = True
    # The others are screened with the 6 central taps (less work). The screen's error is at most
    # tail * max|x| nearby, so only blocks that could still exceed the threshold get the full filter.
    tail = _tail(f, _SCREEN_TAPS)
    for a, b in _runs(cand & ~done, merge_gap=32):
        s, e = a * BLOCK, min(n, b * BLOCK)
        screen = _block_max(_run_env(x2, s, e, f, _SCREEN_TAPS), BLOCK) + tail * x_near[a:b]
        result[a:b] = np.minimum(screen, max(threshold, 0.0))
        for a2, b2 in _runs(screen > threshold, merge_gap=8):
            s2, e2 = s + a2 * BLOCK, min(e, s + b2 * BLOCK)
            result[a + a2 : a + b2] = _block_max(_run_env(x2, s2, e2, f, _TAPS_PER_PHASE), BLOCK)
    return result


def _run_env(x2: np.ndarray, s: int, e: int, f: int, taps: int) -> np.ndarray:
    """True-peak envelope (max over channels) of samples s..e-1, with filter context around them."""
    n = x2.shape[0]
    half = _TAPS_PER_PHASE // 2
    lo, hi = max(0, s - half), min(n, e + half)
    env = np.zeros(e - s, np.float32)
    for c in range(x2.shape[1]):
        seg = _oversampled_abs_max(np.ascontiguousarray(x2[lo:hi, c]), f, taps)
        np.maximum(env, seg[s - lo : s - lo + (e - s)], out=env)
    return env


def true_peak_dbtp(x: np.ndarray, sample_rate: int) -> float:
    """True peak in dBTP (4x oversampled below 88.2 kHz); -inf for silence."""
    x2 = _as_2d(x)
    if x2.size == 0:
        return float("-inf")
    sample_blocks = _block_peak(x2)
    sample_peak = float(sample_blocks.max())
    if sample_peak == 0.0:
        return float("-inf")
    # The maximum is >= the sample peak, so parts that cannot reach it need no filtering.
    peak = float(true_peak_blocks(x2, sample_rate, sample_peak * 0.999, sample_blocks=sample_blocks).max())
    return 20.0 * np.log10(max(peak, sample_peak))


def _block_max(env: np.ndarray, block: int) -> np.ndarray:
    n = env.size
    full = n // block
    head = env[: full * block].reshape(full, block).max(axis=1) if full else np.zeros(0, env.dtype)
    if n == full * block:
        return head
    return np.append(head, env[full * block :].max())


def limiter_gain_knots(
    tp_blocks: np.ndarray,
    sample_rate: int,
    ceiling_dbtp: float,
    *,
    lookahead_ms: float = LOOKAHEAD_MS,
    release_db_per_s: float = RELEASE_DB_PER_S,
) -> np.ndarray:
    """Gain at each BLOCK boundary (blocks + 1 knots; linear in between) so that every block's true peak
    `tp_blocks` times its gain stays under the ceiling, with smooth attack and release."""
    need = np.maximum(0.0, 20.0 * np.log10(np.maximum(tp_blocks, 1e-12)) - ceiling_dbtp)
    if not need.any():
        return np.ones(need.size + 1)
    la = max(1, round(lookahead_ms * 1e-3 * sample_rate / BLOCK))
    # Forward-looking max: block b already carries the reduction needed up to la blocks ahead.
    ahead = maximum_filter1d(need, size=la + 1, origin=-(la // 2) - (la % 2), mode="constant")
    # Release: y[b] = max(ahead[b], y[b-1] - r) == running max of (ahead[k] + r k) minus r b.
    r = release_db_per_s * BLOCK / sample_rate
    k = np.arange(need.size, dtype=np.float64)
    held = np.maximum.accumulate(ahead + r * k) - r * k
    # Causal moving average over la+1 blocks: every value averaged at a peak's block is >= its need.
    att = uniform_filter1d(held, size=la + 1, origin=la // 2, mode="nearest")
    att = np.maximum(att, need)  # guard the float rounding of the average
    gain_blocks = np.power(10.0, -att / 20.0)
    # Knots at block boundaries take the smaller neighbour, so the linear gain inside a block never
    # exceeds that block's own gain; the curve is continuous (no steps to splatter).
    knots = np.empty(gain_blocks.size + 1)
    knots[0], knots[-1] = gain_blocks[0], gain_blocks[-1]
    knots[1:-1] = np.minimum(gain_blocks[:-1], gain_blocks[1:])
    return knots


def _apply_knots(x2: np.ndarray, knots: np.ndarray) -> None:
    """Multiply (n, channels) audio in place by the gain linear between block knots, touching only the
    blocks where it is under 1."""
    n = x2.shape[0]
    below = np.minimum(knots[:-1], knots[1:]) < 1.0
    frac = (np.arange(BLOCK, dtype=np.float64) + 0.5) / BLOCK
    for a, b in _runs(below, merge_gap=4):
        s, e = a * BLOCK, min(n, b * BLOCK)
        left, right = knots[a:b], knots[a + 1 : b + 1]
        gain = (left[:, None] + (right - left)[:, None] * frac[None, :]).reshape(-1)[: e - s]
        x2[s:e] *= gain.astype(np.float32)[:, None]


def limit_true_peak(x: np.ndarray, sample_rate: int, ceiling_dbtp: float = -1.0) -> np.ndarray:
    """Look-ahead true-peak limiter; the output's true peak by a 4x polyphase meter is at most
    ceiling_dbtp - METER_MARGIN_DB, so that 8x meters agree too. It aims 0.1 dB under that.

    Parameters
    ----------
    x : np.ndarray
        (n,) or (n, channels) float audio (not modified).
    sample_rate : int
        Hz.
    ceiling_dbtp : float
        The true-peak ceiling, dBTP.

    Returns
    -------
    np.ndarray
        float32 audio of x's shape; x itself (as float32) when nothing exceeds the ceiling.
    """
    x2 = _as_2d(x)
    squeeze = np.asarray(x).ndim == 1
    if x2.shape[0] == 0:
        return x2[:, 0].copy() if squeeze else x2.copy()
    # The 4x meter's guarantee is kept METER_MARGIN_DB under the ceiling: 8x meters read up to
    # ~0.15 dB more on full-band material.
    ceiling_dbtp -= METER_MARGIN_DB
    ceiling = 10 ** (ceiling_dbtp / 20.0)
    target_db = ceiling_dbtp - 0.1
    out = x2
    bound = _bound(_factor(sample_rate))
    sample_blocks = _block_peak(x2)
    known: np.ndarray | None = None
    for _ in range(4):
        if known is None:
            tp = true_peak_blocks(out, sample_rate, 10 ** (target_db / 20.0), sample_blocks=sample_blocks)
        else:
            # Later passes re-filter only blocks whose bound exceeds the ceiling; blocks known to be
            # under it need no further reduction.
            risky = known > ceiling
            bounds = np.where(risky, known, 0.0)
            tp = true_peak_blocks(out, sample_rate, ceiling, upper_blocks=bounds, sample_blocks=sample_blocks)
            tp *= risky
        if float(tp.max()) <= ceiling:
            break
        knots = limiter_gain_knots(tp, sample_rate, target_db)
        # Where the gain is smooth, tp(out * gain) ~= gain * tp(out); the error is at most
        # bound * max|x| * (gain change over the filter span). The gain is linear within a block, so
        # over the 20-sample span it changes by at most 20/BLOCK of the largest step nearby. That
        # upper bound decides which blocks the next pass must filter again.
        g_b = np.maximum(knots[:-1], knots[1:])
        dg = maximum_filter1d(np.abs(np.diff(knots)), 3, mode="nearest") * (_TAPS_PER_PHASE / BLOCK)
        x_hi = maximum_filter1d(sample_blocks, 3, mode="nearest")
        known = g_b * tp + bound * x_hi * dg
        if out is x2:
            out = x2.copy()
        _apply_knots(out, knots)
        sample_blocks = (sample_blocks * g_b).astype(np.float32)  # an upper bound: enough to screen
        if float(known.max()) <= ceiling:
            break
        target_db -= 0.1
    else:
        # Safety net: a static trim settles any residue the smooth gain left.
        tp_max = float(true_peak_blocks(out, sample_rate, ceiling).max())
        if tp_max > ceiling:
            out = out * np.float32(10 ** ((ceiling_dbtp - 0.1) / 20.0) / tp_max)
    res = np.asarray(out, np.float32)
    return res[:, 0] if squeeze else res


def mix_stems(
    stems: Mapping[str, np.ndarray],
    volumes: Mapping[str, float],
    sample_rate: int,
    *,
    limiter_ceiling_dbtp: float = -1.0,
    target_lufs: float | None = None,
) -> np.ndarray:
    """Sum stems (each (n,) or (n, channels); lengths may differ, shorter ones are padded with silence)
    at their volumes (0..2, default 1), optionally normalise to `target_lufs`, then true-peak limit.
    Returns float32 (n_max, channels_max); mono stems are spread to every channel."""
    for name, v in volumes.items():
        if not 0.0 <= float(v) <= VOLUME_MAX:
            raise ValueError(f"volume for {name!r} must be within 0..{VOLUME_MAX:g}, got {v}")
    arrays = {k: _as_2d(v) for k, v in stems.items()}
    if not arrays:
        raise ValueError("no stems to mix")
    n = max(a.shape[0] for a in arrays.values())
    ch = max(a.shape[1] for a in arrays.values())
    mix = np.zeros((n, ch), np.float32)
    for name, a in arrays.items():
        vol = np.float32(volumes.get(name, 1.0))
        if vol == 0.0:
            continue
        if a.shape[1] == ch:
            mix[: a.shape[0]] += a * vol
        elif a.shape[1] == 1:
            mix[: a.shape[0]] += a * vol  # broadcast mono to every channel
        else:
            mix[: a.shape[0]] += a.mean(axis=1, keepdims=True) * vol
    if target_lufs is not None:
        mix = normalise_loudness(mix, sample_rate, target_lufs)
    return limit_true_peak(mix, sample_rate, limiter_ceiling_dbtp)


def integrated_loudness(x: np.ndarray, sample_rate: int) -> float:
    import pyloudnorm

    x2 = _as_2d(x).astype(np.float64)
    if x2.shape[0] < int(0.4 * sample_rate):
        return float("-inf")
    return float(pyloudnorm.Meter(sample_rate).integrated_loudness(x2))


def normalise_loudness(x: np.ndarray, sample_rate: int, target_lufs: float) -> np.ndarray:
    """Gain to `target_lufs` integrated loudness; silence or too-short audio is returned unchanged."""
    loud = integrated_loudness(x, sample_rate)
    if not np.isfinite(loud):
        return np.asarray(x, np.float32)
    return (np.asarray(x, np.float32) * np.float32(10 ** ((target_lufs - loud) / 20.0))).astype(np.float32)
