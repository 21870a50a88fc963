"""`audiomixer bench analyse`: real-time factor of analysing one stem (onsets, f0 with voicing, RMS
envelope, silence map, kind), with its accuracy on the synthetic truth, against bare librosa baselines on
the same input. One core; numba's first compile is reported, not timed."""

from __future__ import annotations

import argparse

import numpy as np

from audiomixer_tools.bench.render import Clock, fmt_clock, load_note, numba_warmup, one_core, peak_memory_mb

ANALYSE_GOAL = 20.0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="audiomixer bench analyse", description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=180.0, help="stem length in seconds")
    p.add_argument("--sample-rate", type=int, default=44100)
    p.add_argument("--stem", choices=("bass", "drums", "vocals"), default="bass")
    p.add_argument("--pyin", action="store_true", help="also time librosa.pyin at 22.05 kHz (slow)")
    p.add_argument("--no-pin", action="store_true", help="do not pin to one core")
    p.add_argument("--no-memory", action="store_true", help="skip the tracemalloc pass")
    args = p.parse_args(argv)

    import librosa

    from audiomixer.dsp.analysis import ANALYSIS_SR, analyse_stem
    from audiomixer.dsp.audio_io import resample
    from audiomixer_tools import signals as S
    from audiomixer_tools.metrics import onset_f1, raw_pitch_accuracy

    sr, dur = args.sample_rate, args.duration
    warm = numba_warmup()
    stems, truth = S.synth_song(dur, sr, seed=0)
    stem = stems[args.stem]
    print(f"analyse bench: one stereo '{args.stem}' stem, {dur:.0f} s at {sr} Hz")
    print(f"  numba first use (compile or cache load, excluded): {warm:.2f} s")
    with one_core(not args.no_pin) as where:
        print(f"  cpu: {where}; {load_note()}")
        analyse_stem(stem[: 5 * sr], sr)  # warm every code path
        with Clock() as ours:
            a = analyse_stem(stem, sr)
        mono = np.ascontiguousarray(stem.mean(axis=1))
        with Clock() as base_onset:
            librosa.onset.onset_detect(y=mono, sr=sr, backtrack=True)
        with Clock() as base_yin:
            librosa.yin(
                resample(mono, sr, ANALYSIS_SR), fmin=38.0, fmax=1600.0, sr=ANALYSIS_SR, hop_length=256
            )
        base_pyin: Clock | None = None
        if args.pyin:
            y22 = resample(mono, sr, ANALYSIS_SR)
            with Clock() as base_pyin:
                librosa.pyin(y22, fmin=38.0, fmax=1600.0, sr=ANALYSIS_SR)
    print(f"  ours: onsets + f0/voicing + envelope + silence + kind: {fmt_clock(ours, dur)}")
    for label, secs in (("wall", ours.wall), ("cpu", ours.cpu)):
        rtf = dur / secs
        verdict = "meets" if rtf >= ANALYSE_GOAL else "MISSES"
        print(f"analysis of one stem ({label}): {secs:.3f} s -> {rtf:.1f}x real time", end="")
        print(f" ({verdict} goal >= {ANALYSE_GOAL:g}x)")
    print(f"baseline librosa.onset.onset_detect at {sr} Hz (backtracked): {fmt_clock(base_onset, dur)}")
    print(f"baseline librosa.yin at {ANALYSIS_SR} Hz, hop 256: {fmt_clock(base_yin, dur)}")
    print(f"ours / (onset_detect + yin) cpu-time ratio {ours.cpu / (base_onset.cpu + base_yin.cpu):.2f}")
    if base_pyin is not None:
        print(f"baseline librosa.pyin at {ANALYSIS_SR} Hz: {fmt_clock(base_pyin, dur)}")
    if args.stem == "drums":
        f1 = onset_f1(truth.drum_onsets_s, a.onset_times_s)
        print(f"accuracy: onset F1 (+-50 ms) {f1:.3f}; kind {a.kind}")
    else:
        ref = truth.bass_f0 if args.stem == "bass" else truth.vocal_f0
        rpa = raw_pitch_accuracy(ref.times_s, ref.f0_hz, a.frame_times_s, a.f0_hz)
        print(f"accuracy: raw pitch accuracy (50 cents) {rpa:.3f}; kind {a.kind}")
    if not args.no_memory:
        mem = peak_memory_mb(lambda: analyse_stem(stem, sr))
        print(
            f"peak traced memory during analysis: {mem:.0f} MB (the stem itself: {stem.nbytes / 1e6:.0f} MB)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
