"""`audiomixer bench quality`: the sound on real music (issue 11). Every song of the fluidsynth corpus
goes through what `audiomixer remix --stems` runs (drums <- a recorded kit, bass <- a synth bass, other <-
a bright lead; the lead, standing in for vocals, left as it is), and the nine measures of issue 11 are
printed per song and as means, beside two baselines computed in the same run: (a) the stems untouched
(the render measures taken on the source stems) and (b) librosa's pYIN and onset detector with their
default settings (the analysis measures). One core; the last lines say PASS or FAIL per bar."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from audiomixer_tools.bench import corpus as C
from audiomixer_tools.bench import quality_measures as Q

STYLE_FOR_STEM = {"drums": "kit", "bass": "synth_bass", "other": "bright_lead"}
STYLED = tuple(STYLE_FOR_STEM)
TRUE_PEAK_CEILING_DBTP = -1.0
# General MIDI drum notes by the role a drum replacer keeps (the kit style sound's one-shots are GM notes).
GM_DRUM_CLASS = {
    35: "kick", 36: "kick", 37: "snare", 38: "snare", 39: "snare", 40: "snare",
    42: "closed hat", 44: "closed hat", 46: "open hat",
    41: "tom", 43: "tom", 45: "tom", 47: "tom", 48: "tom", 50: "tom",
    49: "cymbal", 51: "cymbal", 52: "cymbal", 53: "cymbal", 55: "cymbal", 57: "cymbal", 59: "cymbal",
}  # fmt: skip


@dataclass(frozen=True)
class Bar:
    """One of issue 11's quality bars: a measure, its bar and whether higher or lower is better."""

    key: str
    label: str
    bar: float
    source: str  # the baseline it is shown beside: "untouched" (a) or "librosa" (b)
    fmt: str = "{:.3f}"


BARS: tuple[Bar, ...] = (
    Bar("drum_onset_f1", "drum onset F1 of the analysis (+-50 ms)", 0.95, "librosa"),
    Bar("bass_rpa", "bass f0 raw pitch accuracy of the analysis (50 cents)", 0.90, "librosa"),
    Bar("rendered_drum_onset_f1", "rendered drums keep the onsets (F1)", 0.90, "untouched"),
    Bar("rendered_bass_rpa", "rendered bass follows the source f0 (RPA by pYIN)", 0.85, "untouched"),
    Bar("envelope_correlation", "envelope correlation", 0.80, "untouched"),
    Bar("timbre_moves", "every styled stem's timbre moves toward its style sound", 1.0, "untouched"),
    Bar("silence_kept", "silence kept (< -60 dBFS -> < -50 dBFS)", 0.95, "untouched"),
    Bar("true_peak_ok", "mix true peak <= -1 dBTP (4x/8x resample_poly meter)", 1.0, "untouched"),
    Bar("same_length", "same length", 1.0, "untouched"),
)


@dataclass
class SongResult:
    name: str
    engine: dict[str, float] = field(default_factory=dict)
    untouched: dict[str, float] = field(default_factory=dict)
    librosa: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def run_remix(
    stems_dir: Path, styles: dict[str, Path], out_dir: Path, seed: int
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Run `audiomixer remix --stems` in-process; returns (mix as written, rendered stems as written)."""
    import soundfile as sf

    from audiomixer_tools import remix

    argv = [
        "--stems", str(stems_dir), "-o", str(out_dir / "mix.wav"), "--stems-out", str(out_dir / "stems"),
        "--seed", str(seed), "--no-progress",
    ]  # fmt: skip
    for stem, path in styles.items():
        argv += ["--style", f"{stem}={path}"]
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        rc = remix.main(argv)
    if rc != 0:
        # Its one-line error, not the warnings printed before it.
        lines = [ln for ln in err.getvalue().splitlines() if ln.strip()]
        reason = next((ln for ln in reversed(lines) if "error:" in ln), lines[-1] if lines else "")
        raise RuntimeError(f"audiomixer remix exited {rc}: {reason.split('error:', 1)[-1].strip()}")
    mix = sf.read(str(out_dir / "mix.wav"), dtype="float32", always_2d=True)[0]
    rendered = {
        p.stem: sf.read(str(p), dtype="float32", always_2d=True)[0] for p in (out_dir / "stems").glob("*.wav")
    }
    return mix, rendered


def render_measures(
    stems: dict[str, np.ndarray],
    rendered: dict[str, np.ndarray],
    mix: np.ndarray,
    styles: dict[str, tuple[np.ndarray, int]],
    truth: C.Truth,
    sr: int,
    details: dict[str, Any],
    *,
    detected: tuple[np.ndarray, tuple[np.ndarray, np.ndarray]] | None = None,
) -> dict[str, float]:
    """The seven render measures of issue 11 for one song (the same code judges the untouched stems).
    `detected`: the drum onsets and bass pYIN track of `rendered`, when already known."""
    out: dict[str, float] = {}
    onsets, (times, f0) = detected or (
        Q.librosa_onsets(rendered["drums"], sr),
        Q.pyin_track(rendered["bass"], sr),
    )
    out["rendered_drum_onset_f1"] = Q.onset_f1(truth.drum_onsets_s, onsets)
    out["rendered_bass_rpa"] = Q.pitch_scores(truth.bass_times_s, truth.bass_f0_hz, times, f0)[0]
    env, moves, silence = [], [], []
    for stem in STYLED:
        style, style_sr = styles[stem]
        env.append(Q.envelope_correlation(stems[stem], rendered[stem], sr))
        d_src = Q.mfcc_distance(stems[stem], style, sr, style_sr)
        d_out = Q.mfcc_distance(rendered[stem], style, sr, style_sr)
        hits: dict[str, float] = {}
        if stem == "drums":
            # A kit is judged hit by hit: the whole-stem mean MFCC follows the beat's mix of drums (a
            # perfect replacement of a hat-heavy beat ends further from the kit's one-shot sequence).
            hit_src = Q.drum_hit_mfcc_distance(stems[stem], style, truth.drum_onsets_s, sr, style_sr)
            hit_out = Q.drum_hit_mfcc_distance(rendered[stem], style, truth.drum_onsets_s, sr, style_sr)
            hits = {"hit_mfcc_distance_source_to_kit": hit_src, "hit_mfcc_distance_rendered_to_kit": hit_out}
            moves.append(float(hit_out < hit_src))
        else:
            moves.append(float(d_out < d_src))
        silence.append(Q.silence_kept(stems[stem], rendered[stem], sr))
        details[stem] = {
            "envelope_correlation": env[-1],
            "mfcc_distance_source_to_style": d_src,
            "mfcc_distance_rendered_to_style": d_out,
            **hits,
            "silence_kept": silence[-1],
            "stereo": bool(
                rendered[stem].shape[1] > 1 and np.any(rendered[stem][:, 0] != rendered[stem][:, 1])
            ),
            "clipped_samples": int(np.sum(np.abs(rendered[stem]) >= 1.0)),
        }
    # Issue 11's "clean output": samples at full scale in the stems as written, and the style's stereo kept.
    out["clipped_samples"] = float(sum(details[stem]["clipped_samples"] for stem in STYLED))
    out["stereo_kept"] = float(np.mean([details[stem]["stereo"] for stem in STYLED]))
    out["envelope_correlation"] = float(np.mean(env))
    out["timbre_moves"] = float(np.mean(moves))
    kept = [s for s in silence if not math.isnan(s)]
    out["silence_kept"] = float(np.mean(kept)) if kept else 1.0
    tp = Q.true_peak_dbtp(mix)
    out["mix_true_peak_dbtp"] = tp
    out["true_peak_ok"] = float(tp <= TRUE_PEAK_CEILING_DBTP)
    n = next(iter(stems.values())).shape[0]
    out["same_length"] = float(mix.shape[0] == n and all(r.shape[0] == n for r in rendered.values()))
    return out


def drum_role_kept(
    song: C.Song, rendered_drums: np.ndarray, kit: np.ndarray, kit_sr: int, details: dict[str, Any]
) -> float:
    """Share of the song's MIDI drum notes whose rendered hit plays a kit one-shot of the same role
    (kick, snare, closed hat, open hat, tom, cymbal): the kit's one-shots are segmented at its onsets and
    named by the GM note its style spec played there; the one-shots heard at each hit by
    `quality_measures.drum_classes_heard`. Per-role counts go to `details`."""
    import librosa

    spec = next(s for s in C.SONGS if s.name == song.name)
    notes = C.compose(spec, song.duration_s)["drums"].notes
    kit_spec = next(s for s in C.STYLES if s.name == STYLE_FOR_STEM["drums"])
    kit_mono = kit.mean(axis=1) if kit.ndim > 1 else kit
    if kit_sr != song.sample_rate:
        kit_mono = librosa.resample(kit_mono, orig_sr=kit_sr, target_sr=song.sample_rate)
    starts = Q.one_shot_starts(kit_mono, song.sample_rate)
    played_s = np.asarray([start for _pitch, start, _dur, _vel in kit_spec.notes])
    shot_roles = [
        GM_DRUM_CLASS.get(kit_spec.notes[int(np.abs(played_s - s / song.sample_rate).argmin())][0], "other")
        for s in starts
    ]
    shots = [kit_mono[a:b] for a, b in zip(starts, np.append(starts[1:], kit_mono.size), strict=True)]
    times = np.unique(np.round([n.start_s for n in notes], 6))
    heard = Q.drum_classes_heard(rendered_drums, song.sample_rate, times, shots, shot_roles)
    heard_at = dict(zip(times.tolist(), heard, strict=True))
    kept: dict[str, list[bool]] = {}
    for n in notes:
        role = GM_DRUM_CLASS.get(n.pitch, "other")
        kept.setdefault(role, []).append(role in heard_at[float(np.round(n.start_s, 6))])
    details["drum_role_kept"] = {role: [int(sum(v)), len(v)] for role, v in sorted(kept.items())}
    every = [k for v in kept.values() for k in v]
    return float(np.mean(every)) if every else float("nan")


def measure_song(song: C.Song, corpus: C.Corpus, seed: int) -> SongResult:
    from audiomixer.dsp.analysis import analyse_stem
    from audiomixer_tools.bench.render import Clock

    res = SongResult(song.name)
    sr = song.sample_rate
    stems = song.load_stems()
    truth = song.truth
    styles = {stem: corpus.style_sounds[name].load() for stem, name in STYLE_FOR_STEM.items()}

    # (b) librosa's defaults, and the numbers (a) shares with it: the detectors on the source stems.
    src_onsets = Q.librosa_onsets(stems["drums"], sr)
    pyin_times, pyin_f0 = Q.pyin_track(stems["bass"], sr)
    pyin_rpa, pyin_vr = Q.pitch_scores(truth.bass_times_s, truth.bass_f0_hz, pyin_times, pyin_f0)
    lead_times, lead_f0 = Q.pyin_track(stems["vocals"], sr, Q.LEAD_FMIN_HZ, Q.LEAD_FMAX_HZ)
    res.librosa = {
        "drum_onset_f1": Q.onset_f1(truth.drum_onsets_s, src_onsets),
        "bass_rpa": pyin_rpa,
        "bass_voicing_recall": pyin_vr,
        "lead_rpa": Q.pitch_scores(truth.bass_times_s, truth.lead_f0_hz, lead_times, lead_f0)[0],
    }

    # The engine's analysis, timed on one core (process CPU time: fair on a shared machine).
    cpu_s = 0.0
    analyses = {}
    for stem in ("drums", "bass", "vocals"):
        with Clock() as clock:
            analyses[stem] = analyse_stem(stems[stem], sr)
        cpu_s += clock.cpu
    bass, lead = analyses["bass"], analyses["vocals"]
    rpa, vr = Q.pitch_scores(truth.bass_times_s, truth.bass_f0_hz, bass.frame_times_s, bass.f0_hz)
    res.engine = {
        "drum_onset_f1": Q.onset_f1(truth.drum_onsets_s, analyses["drums"].onset_times_s),
        "bass_rpa": rpa,
        "bass_voicing_recall": vr,
        "lead_rpa": Q.pitch_scores(truth.bass_times_s, truth.lead_f0_hz, lead.frame_times_s, lead.f0_hz)[0],
        "analysis_rtf": len(analyses) * song.duration_s / max(cpu_s, 1e-9),
    }
    res.details["kinds"] = {stem: a.kind for stem, a in analyses.items()}

    with tempfile.TemporaryDirectory() as tmp:
        style_paths = {stem: corpus.style_sounds[name].path for stem, name in STYLE_FOR_STEM.items()}
        # (a) the stems untouched, through the same mixer.
        base_mix, _ = run_remix(song.path, {}, Path(tmp) / "untouched", seed)
        untouched_details: dict[str, Any] = {}
        res.untouched = render_measures(
            stems, stems, base_mix, styles, truth, sr, untouched_details,
            detected=(src_onsets, (pyin_times, pyin_f0)),
        )  # fmt: skip
        try:
            mix, rendered = run_remix(song.path, style_paths, Path(tmp) / "styled", seed)
        except Exception as exc:  # the engine's failure is a result, not the benchmark's
            res.error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            res.details["traceback"] = traceback.format_exc(limit=-3)
            return res
    res.engine.update(render_measures(stems, rendered, mix, styles, truth, sr, res.details))
    res.engine["drum_role_kept"] = drum_role_kept(song, rendered["drums"], *styles["drums"], res.details)
    return res


# --- reporting -------------------------------------------------------------------------------------------

# key, header, format. Beside the bars, judged by none: the bass's voicing recall, the lead's raw pitch
# accuracy (the other tonal stem with a truth), the mix's true peak, full-scale samples in the styled stems
# as written, the share of styled stems that come out stereo, the analysis' real-time factor per stem, and
# the share of MIDI drum notes whose rendered hit is a kit one-shot of the same role (kick, snare, hat...).
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("drum_onset_f1", "onsF1", "{:.3f}"),
    ("bass_rpa", "bRPA", "{:.3f}"),
    ("bass_voicing_recall", "bVR", "{:.3f}"),
    ("lead_rpa", "leadRPA", "{:.3f}"),
    ("rendered_drum_onset_f1", "r-onsF1", "{:.3f}"),
    ("rendered_bass_rpa", "r-bRPA", "{:.3f}"),
    ("envelope_correlation", "envCorr", "{:.3f}"),
    ("timbre_moves", "timbre", "{:.2f}"),
    ("silence_kept", "silence", "{:.3f}"),
    ("mix_true_peak_dbtp", "TP dBTP", "{:+.2f}"),
    ("true_peak_ok", "TP ok", "{:.2f}"),
    ("same_length", "length", "{:.2f}"),
    ("clipped_samples", "clipped", "{:.0f}"),
    ("stereo_kept", "stereo", "{:.2f}"),
    ("drum_role_kept", "drumRole", "{:.3f}"),
    ("analysis_rtf", "anaRTF", "{:.1f}x"),
)


def _mean(results: list[SongResult], which: str, key: str) -> float:
    """Mean over songs; a song whose render crashed counts 0 on the engine's render bars (and is left
    out of the figures that no bar judges)."""
    values = []
    for r in results:
        v = getattr(r, which).get(key)
        if v is None and which == "engine" and r.error is not None and key in {b.key for b in BARS}:
            v = 0.0
        if v is not None and not math.isnan(v):
            values.append(v)
    return float(np.mean(values)) if values else float("nan")


def _table(
    title: str, results: list[SongResult], which: str, keys: set[str], emit: Callable[[str], None]
) -> None:
    cols = [c for c in COLUMNS if c[0] in keys]
    width = max(len(r.name) for r in results) + 2
    emit(f"\n{title}")
    emit(" " * width + " ".join(f"{h:>8}" for _, h, _ in cols))
    for r in results:
        d = getattr(r, which)
        cells = [f.format(d[k]) if k in d and not math.isnan(d[k]) else "-" for k, _, f in cols]
        line = f"{r.name:<{width}}" + " ".join(f"{c:>8}" for c in cells)
        if which == "engine" and r.error:
            line += f"  RENDER FAILED: {r.error}"
        emit(line)
    means = [_mean(results, which, k) for k, _, _ in cols]
    emit(f"{'mean':<{width}}" + " ".join(f"{(f.format(m) if not math.isnan(m) else '-'):>8}"
                                           for m, (_, _, f) in zip(means, cols, strict=True)))  # fmt: skip


def summary(results: list[SongResult]) -> list[dict[str, Any]]:
    rows = []
    for bar in BARS:
        engine = _mean(results, "engine", bar.key)
        baseline = _mean(results, bar.source, bar.key)
        rows.append({"key": bar.key, "label": bar.label, "bar": bar.bar, "engine": engine,
                     "baseline": baseline, "baseline_kind": bar.source,
                     "pass": bool(not math.isnan(engine) and engine >= bar.bar)})  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="audiomixer bench quality", description=__doc__.splitlines()[0])
    p.add_argument("--songs", type=int, default=None, help="only the first N songs of the corpus")
    p.add_argument("--seconds", type=float, default=30.0, help="length of each song (s)")
    p.add_argument("--corpus", type=Path, default=C.DEFAULT_DIR, help="corpus cache directory")
    p.add_argument("--rebuild", action="store_true", help="render the corpus again")
    p.add_argument("--seed", type=int, default=0, help="the render's grain-choice seed")
    p.add_argument("--json", type=Path, default=None, metavar="OUT", help="write every figure here")
    p.add_argument("--no-pin", action="store_true", help="do not pin to one core")
    args = p.parse_args(argv)
    if args.songs is not None and args.songs < 1:
        p.error("--songs must be at least 1")
    if not 3.0 <= args.seconds <= 600.0:
        p.error("--seconds must be within 3..600")

    from audiomixer_tools.bench.render import load_note, numba_warmup, one_core

    started = time.perf_counter()
    try:
        corpus = C.build_corpus(
            args.corpus, seconds=args.seconds, songs=args.songs, rebuild=args.rebuild, log=True
        )
    except C.CorpusUnavailable as exc:
        print(f"audiomixer bench quality: error: {exc}", file=sys.stderr)
        return 2
    print(f"quality bench: {len(corpus.songs)} songs x {args.seconds:g} s from {corpus.path}")
    print("  styles: " + ", ".join(f"{stem} <- {name}" for stem, name in STYLE_FOR_STEM.items())
          + "; vocals (the lead) unchanged")  # fmt: skip
    numba_warmup()
    results: list[SongResult] = []
    with one_core(not args.no_pin) as where:
        print(f"  cpu: {where}; {load_note()}", flush=True)
        for song in corpus.songs:
            t0 = time.perf_counter()
            results.append(measure_song(song, corpus, args.seed))
            r = results[-1]
            status = f"RENDER FAILED ({r.error})" if r.error else "ok"
            kinds = ", ".join(f"{k} {v}" for k, v in r.details.get("kinds", {}).items())
            print(
                f"  {song.name}: {time.perf_counter() - t0:.1f} s, analysed as {kinds}; {status}", flush=True
            )

    analysis = {"drum_onset_f1", "bass_rpa", "bass_voicing_recall", "lead_rpa", "analysis_rtf"}
    rendering = {c[0] for c in COLUMNS} - analysis
    _table(
        "analysis: the engine's (audiomixer.dsp.analysis.analyse_stem)", results, "engine", analysis, print
    )
    _table(
        "analysis baseline (b): librosa defaults (pyin, onset_detect)", results, "librosa", analysis, print
    )
    _table("render: the engine's (`audiomixer remix --stems`)", results, "engine", rendering, print)
    _table("render baseline (a): the stems untouched", results, "untouched", rendering, print)
    rows = summary(results)
    print()
    for row in rows:
        verdict = "PASS" if row["pass"] else "FAIL"
        print(f"{verdict}  {row['label']:<58} bar >= {row['bar']:g}: {row['engine']:.3f}"
              f"  (baseline {row['baseline_kind']}: {row['baseline']:.3f})")  # fmt: skip
    n_pass = sum(r["pass"] for r in rows)
    elapsed = time.perf_counter() - started
    print(f"{n_pass} of {len(rows)} bars met; {len(results)} songs in {elapsed:.0f} s")
    if args.json is not None:
        doc = {
            "seconds": args.seconds, "seed": args.seed, "corpus": str(corpus.path), "elapsed_s": elapsed,
            "bars": rows,
            "songs": [{"name": r.name, "engine": r.engine, "untouched": r.untouched, "librosa": r.librosa,
                       "details": r.details, "error": r.error} for r in results],
        }  # fmt: skip
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
