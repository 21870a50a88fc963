"""`audiomixer remix`: the whole job on local files in one process — separate a song with Demucs (or take
given stems), analyse, re-render chosen stems with style sounds, mix, write.

    audiomixer remix SONG -o OUT.wav --style drums=kit.wav --style bass=synth.flac
    audiomixer remix --stems DIR -o OUT.mp3 --volume vocals=1.2 --analysis analysis.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from audiomixer.settings import STEMS

PROG = "audiomixer remix"
FORMATS = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_24"), "mp3": ("MP3", "MPEG_LAYER_III")}
STEM_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
DEFAULT_SR = 44100


class UsageError(Exception):
    """A user mistake: reported as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Separate (or take) stems, re-render them with style sounds, mix.")
    p.add_argument("song", nargs="?", type=Path, help="song to separate with Demucs")
    p.add_argument("--stems", type=Path, metavar="DIR", help="use DIR/{drums,bass,vocals,other}.wav|.flac")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT", help="mix file to write")
    p.add_argument("--style", action="append", default=[], metavar="STEM=FILE", help="style sound for a stem")
    p.add_argument("--volume", action="append", default=[], metavar="STEM=X", help="stem volume, 0..2")
    p.add_argument("--mode", action="append", default=[], metavar="STEM=MODE", help="percussive or tonal")
    p.add_argument("--grain-ms", type=float, default=120.0, help="grain duration in ms, 10..1000")
    p.add_argument("--no-pitch-mapping", action="store_true", help="do not transpose grains to the stem's f0")
    p.add_argument("--no-envelope", action="store_true", help="do not impose the stem's loudness envelope")
    p.add_argument("--format", choices=sorted(FORMATS), help="output format (default: from OUT's extension)")
    p.add_argument("--seed", type=int, default=0, help="grain-choice seed (same seed, same output)")
    p.add_argument("--target-lufs", type=float, default=None, help="normalise the mix to this loudness")
    p.add_argument("--analysis", type=Path, metavar="FILE.json", help="write onsets and f0 per stem")
    p.add_argument("--stems-out", type=Path, metavar="DIR", help="also write the rendered stems here")
    p.add_argument("--model", default=None, help="Demucs model name (default: DEMUCS_MODEL setting)")
    p.add_argument("--model-repo", type=Path, default=None, help="local Demucs model repository")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _pairs(items: Sequence[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        stem, sep, value = item.partition("=")
        stem = stem.strip().lower()
        if not sep or not value:
            raise UsageError(f"{what} must look like STEM=VALUE, got {item!r}")
        if stem not in STEMS:
            raise UsageError(f"unknown stem {stem!r} in {what} (choose from {', '.join(STEMS)})")
        out[stem] = value
    return out


def _read_audio(path: Path, target_sr: int | None = None) -> tuple[np.ndarray, int]:
    import soundfile as sf

    if not path.is_file():
        raise UsageError(f"file not found: {path}")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile's messages are the useful part
        raise UsageError(f"cannot read {path}: {exc}") from exc
    if data.shape[0] == 0:
        raise UsageError(f"no audio in {path}")
    if target_sr is not None and sr != target_sr:
        from audiomixer.dsp.audio_io import resample

        data = np.stack([resample(data[:, c], sr, target_sr) for c in range(data.shape[1])], axis=1)
        sr = target_sr
    return np.ascontiguousarray(data, dtype=np.float32), int(sr)


def _load_stem_dir(directory: Path) -> tuple[dict[str, np.ndarray], int]:
    if not directory.is_dir():
        raise UsageError(f"stems directory not found: {directory}")
    stems: dict[str, np.ndarray] = {}
    sr: int | None = None
    for stem in STEMS:
        path = next(
            (directory / f"{stem}{ext}" for ext in STEM_EXTENSIONS if (directory / f"{stem}{ext}").is_file()),
            None,
        )
        if path is None:
            continue
        data, file_sr = _read_audio(path, sr)
        sr = file_sr if sr is None else sr
        stems[stem] = data
    if not stems or sr is None:
        raise UsageError(
            f"no stems in {directory} (expected {', '.join(s + '.wav' for s in STEMS)} or .flac)"
        )
    return stems, sr


def _separate(song: Path, model: str | None, repo: Path | None) -> tuple[dict[str, np.ndarray], int]:
    if not song.is_file():
        raise UsageError(f"file not found: {song}")
    try:
        from audiomixer.separation import separate_file
    except ImportError as exc:
        raise UsageError(
            f"separation is not available ({exc}); install the 'gpu' extra or pass --stems DIR"
        ) from exc
    try:
        stems = separate_file(song, model_name=model, repo=repo)
    except Exception as exc:
        raise UsageError(f"separation failed: {exc}") from exc
    return {k: np.asarray(v, np.float32) for k, v in stems.items() if k in STEMS}, DEFAULT_SR


def _output_format(out: Path, fmt: str | None) -> str:
    if fmt:
        return fmt
    ext = out.suffix.lower().lstrip(".")
    if ext not in FORMATS:
        raise UsageError(
            f"cannot tell the format from {out.name!r}; use --format {{{','.join(sorted(FORMATS))}}}"
        )
    return ext


def _write(path: Path, data: np.ndarray, sr: int, fmt: str) -> None:
    import soundfile as sf

    container, subtype = FORMATS[fmt]
    path.parent.mkdir(parents=True, exist_ok=True)
    # Encoders want [-1, 1]; the limiter keeps the mix there, rendered stems may not be.
    sf.write(str(path), np.clip(data, -1.0, 1.0), sr, format=container, subtype=subtype)


def _progress(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, file=sys.stderr, desc="remix", unit="step", leave=False)


def run(args: argparse.Namespace) -> int:
    from audiomixer.dsp.analysis import analyse_stem
    from audiomixer.dsp.grains import analyse_style_sound
    from audiomixer.dsp.granular import GRAIN_MS_MAX, GRAIN_MS_MIN, render_stem
    from audiomixer.dsp.mixer import VOLUME_MAX, mix_stems, true_peak_dbtp

    if (args.song is None) == (args.stems is None):
        raise UsageError("give either SONG or --stems DIR")
    if not GRAIN_MS_MIN <= args.grain_ms <= GRAIN_MS_MAX:
        raise UsageError(
            f"--grain-ms must be within {GRAIN_MS_MIN:g}..{GRAIN_MS_MAX:g}, got {args.grain_ms:g}"
        )
    styles = {k: Path(v) for k, v in _pairs(args.style, "--style").items()}
    volumes: dict[str, float] = {}
    for stem, raw in _pairs(args.volume, "--volume").items():
        try:
            vol = float(raw)
        except ValueError:
            raise UsageError(f"--volume {stem}={raw}: not a number") from None
        if not 0.0 <= vol <= VOLUME_MAX:
            raise UsageError(f"--volume {stem}={raw}: must be within 0..{VOLUME_MAX:g}")
        volumes[stem] = vol
    modes = _pairs(args.mode, "--mode")
    for stem, mode in modes.items():
        if mode not in ("percussive", "tonal"):
            raise UsageError(f"--mode {stem}={mode}: must be percussive or tonal")
    fmt = _output_format(args.output, args.format)
    for path in styles.values():
        if not path.is_file():
            raise UsageError(f"file not found: {path}")

    want_analysis = args.analysis is not None
    n_steps = 2 + len(styles) * 3 + (0 if not want_analysis else 4)
    bar = _progress(n_steps, not args.no_progress)

    def step(label: str) -> None:
        if bar is not None:
            bar.set_postfix_str(label)
            bar.update(1)

    try:
        if args.stems is not None:
            stems, sr = _load_stem_dir(args.stems)
        else:
            stems, sr = _separate(args.song, args.model, args.model_repo)
        step("stems")
        missing_styles = sorted(set(styles) - set(stems))
        if missing_styles:
            raise UsageError(f"--style for a stem that is not there: {', '.join(missing_styles)}")

        analyses = {}
        for stem in STEMS:
            if stem in stems and (want_analysis or stem in styles):
                analyses[stem] = analyse_stem(stems[stem], sr)
                step(f"analyse {stem}")
        rendered = dict(stems)
        for stem, path in styles.items():
            style, style_sr = _read_audio(path)
            table = analyse_style_sound(style, style_sr, grain_ms=args.grain_ms)
            step(f"style {stem}")
            rendered[stem] = render_stem(
                stems[stem],
                sr,
                analyses[stem],
                style,
                style_sr,
                table,
                grain_ms=args.grain_ms,
                use_pitch_mapping=not args.no_pitch_mapping,
                use_envelope=not args.no_envelope,
                mode=modes.get(stem, "auto"),  # type: ignore[arg-type]
                seed=args.seed,
            )
            step(f"render {stem}")
        if args.stems_out is not None:
            for stem, data in rendered.items():
                _write(args.stems_out / f"{stem}.wav", data, sr, "wav")
        mix = mix_stems(rendered, volumes, sr, target_lufs=args.target_lufs)
        step("mix")
        _write(args.output, mix, sr, fmt)
        if want_analysis:
            doc = {
                "sample_rate": sr,
                "stems": {
                    stem: {"onsets_s": [round(float(t), 5) for t in a.onset_times_s], **a.f0_series()}
                    for stem, a in analyses.items()
                },
            }
            args.analysis.parent.mkdir(parents=True, exist_ok=True)
            args.analysis.write_text(json.dumps(doc))
    finally:
        if bar is not None:
            bar.close()
    tp = true_peak_dbtp(mix, sr)
    print(f"wrote {args.output} ({mix.shape[0] / sr:.1f} s, {fmt}, true peak {tp:.1f} dBTP)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return run(args)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help
        return int(exc.code or 0) if isinstance(exc.code, int | None) else 2


if __name__ == "__main__":
    sys.exit(main())
