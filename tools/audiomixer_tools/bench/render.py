"""`audiomixer bench render`: real-time factor of rendering four styled stems and mixing them.

Synthesises a song (four stereo stems) and style sounds, analyses them (untimed), warms every code path
on a short excerpt (numba's first compile is reported, not timed), then times render + mix of the whole
song on one core, and a bare numpy overlap-add of the same grains as a baseline. Peak memory is measured
in a second, untimed pass with tracemalloc (which slows allocation).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from audiomixer.mix_settings import GRAIN_MS_DEFAULT
from audiomixer.settings import STEMS

RENDER_GOAL = 50.0


@contextlib.contextmanager
def one_core(enabled: bool = True) -> Iterator[str]:
    """Pin the process to one CPU and BLAS/OpenMP pools to one thread; yields a description."""
    if not enabled:
        yield "not pinned"
        return
    from threadpoolctl import threadpool_limits

    old: set[int] | None = None
    where = "threads limited to 1"
    if hasattr(os, "sched_setaffinity") and hasattr(os, "sched_getaffinity"):
        old = os.sched_getaffinity(0)
        cpu = min(old)
        os.sched_setaffinity(0, {cpu})
        where = f"pinned to CPU {cpu}, threads limited to 1"
    try:
        with threadpool_limits(limits=1):
            yield where
    finally:
        if old is not None:
            os.sched_setaffinity(0, old)


class Clock:
    """Wall and process-CPU seconds of a block: on a shared machine the CPU time is the fairer figure."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0

    def __enter__(self) -> Clock:
        self._w, self._c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._w
        self.cpu = time.process_time() - self._c


def fmt_clock(c: Clock, duration_s: float) -> str:
    return (
        f"wall {c.wall:6.3f} s ({duration_s / c.wall:6.1f}x)  cpu {c.cpu:6.3f} s ({duration_s / c.cpu:6.1f}x)"
    )


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def load_note() -> str:
    try:
        la = os.getloadavg()[0]
    except OSError:
        return ""
    return f"load average {la:.2f} on {os.cpu_count()} CPUs"


def peak_memory_mb(fn: Callable[[], Any]) -> float:
    tracemalloc.start()
    try:
        fn()
        _cur, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 1e6


def numba_warmup() -> float:
    """Time of librosa's first onset detection in this process (numba compile or cache load)."""
    import librosa

    y = np.random.default_rng(0).standard_normal(22050).astype(np.float32)
    t, _ = timed(lambda: librosa.onset.onset_detect(y=y, sr=22050))
    return t


def style_sounds(sr: int) -> dict[str, np.ndarray]:
    from audiomixer_tools import signals as S

    return {
        "drums": S.style_kit(sr, kit=1),
        "bass": S.style_tone(sr, f0_hz=110.0, duration_s=3.0, timbre="square"),
        "vocals": S.style_scale(sr, timbre="fm"),
        "other": S.style_tone(sr, f0_hz=220.0, duration_s=4.0, timbre="organ"),
    }


def baseline_overlap_add(n: int, style: np.ndarray, sr: int, grain_ms: float, channels: int) -> np.ndarray:
    """Bare numpy: 50%-overlap Hann grains, each resampled with np.interp at a fixed ratio, added."""
    length = int(grain_ms * 1e-3 * sr) // 2 * 2
    hop = length // 2
    win = np.hanning(length).astype(np.float32)
    out = np.zeros(n + length, np.float32)
    src = np.arange(style.size, dtype=np.float64)
    pos = np.arange(length) * 0.75
    for i, start in enumerate(range(0, n, hop)):
        s0 = (i * 997) % max(1, style.size - length)
        out[start : start + length] += np.interp(s0 + pos, src, style).astype(np.float32) * win
    return np.repeat(out[:n, None], channels, axis=1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="audiomixer bench render", description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=180.0, help="song length in seconds")
    p.add_argument("--sample-rate", type=int, default=44100)
    p.add_argument("--grain-ms", type=int, default=GRAIN_MS_DEFAULT)
    p.add_argument("--no-pin", action="store_true", help="do not pin to one core")
    p.add_argument("--no-memory", action="store_true", help="skip the tracemalloc pass")
    args = p.parse_args(argv)

    from audiomixer.dsp.analysis import analyse_stem
    from audiomixer.dsp.grains import analyse_style_sound
    from audiomixer.dsp.granular import render_stem
    from audiomixer.dsp.mixer import mix_stems, true_peak_dbtp
    from audiomixer_tools import signals as S

    sr, dur = args.sample_rate, args.duration
    warm = numba_warmup()
    t_syn, (stems, _truth) = timed(lambda: S.synth_song(dur, sr, seed=0))
    styles = style_sounds(sr)
    t_an, analyses = timed(lambda: {k: analyse_stem(v, sr) for k, v in stems.items()})
    tables = {k: analyse_style_sound(v, sr, grain_ms=args.grain_ms) for k, v in styles.items()}

    def render_all(excerpt: int | None = None) -> tuple[dict[str, Clock], np.ndarray]:
        times: dict[str, Clock] = {}
        out: dict[str, np.ndarray] = {}
        for k in STEMS:
            stem = stems[k] if excerpt is None else stems[k][:excerpt]
            an = analyses[k] if excerpt is None else analyse_stem(stem, sr)
            with Clock() as times[k]:
                out[k] = render_stem(stem, sr, an, styles[k], sr, tables[k], grain_ms=args.grain_ms, seed=0)
        with Clock() as times["mix"]:
            mix = mix_stems(out, {}, sr)
        return times, mix

    print(f"render bench: {len(STEMS)} stereo stems x {dur:.0f} s at {sr} Hz, grain {args.grain_ms:g} ms")
    print(f"  setup (untimed): synthesis {t_syn:.2f} s, analysis of 4 stems {t_an:.2f} s")
    print(f"  numba first use (compile or cache load, excluded): {warm:.2f} s")
    with one_core(not args.no_pin) as where:
        print(f"  cpu: {where}; {load_note()}")
        render_all(excerpt=int(5 * sr))  # warm every code path on a short excerpt
        with Clock() as total:
            times, mix = render_all()
        with Clock() as base:
            for k in STEMS:
                baseline_overlap_add(stems[k].shape[0], styles[k], sr, args.grain_ms, 2)
    for k in STEMS:
        print(f"  {k:<7} ({analyses[k].kind:<10}) {fmt_clock(times[k], dur)}")
    print(f"  mix (sum + true-peak limiter) {fmt_clock(times['mix'], dur)}")
    print(f"  mix output true peak {true_peak_dbtp(mix, sr):.2f} dBTP")
    for label, secs in (("wall", total.wall), ("cpu", total.cpu)):
        rtf = dur / secs
        verdict = "meets" if rtf >= RENDER_GOAL else "MISSES"
        print(
            f"render + mix of 4 styled stems ({label}): {secs:.3f} s -> {rtf:.1f}x real time"
            f" ({verdict} goal >= {RENDER_GOAL:g}x)"
        )
    print(f"baseline (bare numpy overlap-add with np.interp, 4 stems): {fmt_clock(base, dur)}")
    print(f"real/baseline cpu-time ratio {total.cpu / base.cpu:.2f}")
    if not args.no_memory:
        mem = peak_memory_mb(render_all)
        stems_mb = sum(v.nbytes for v in stems.values()) / 1e6
        print(
            f"peak traced memory during render + mix: {mem:.0f} MB (the input stems alone: {stems_mb:.0f} MB)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
