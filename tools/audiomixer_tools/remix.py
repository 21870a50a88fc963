"""`audiomixer remix`: the whole job on local files in one process — separate a song with Demucs (or take
given stems), analyse, re-render chosen stems with style sounds, mix, write.

    audiomixer remix SONG -o OUT.wav --style drums=kit.wav --style bass=synth.flac
    audiomixer remix --stems DIR -o OUT.mp3 --volume vocals=1.2 --analysis analysis.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
from pydantic import ValidationError

from audiomixer.mix_settings import (
    GRAIN_MS_DEFAULT,
    GRAIN_MS_MAX,
    GRAIN_MS_MIN,
    OUTPUT_FORMATS,
    SEED_DEFAULT,
    VOLUME_MAX,
    MixSettings,
    StemConfig,
)
from audiomixer.settings import STEMS
from audiomixer.stem_sets import KNOWN_STEMS, PRETRAINED_MODELS, STEM_NAME, ordered

PROG = "audiomixer remix"
STEM_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".m4a", ".opus", ".webm", ".wma")


class UsageError(Exception):
    """A user mistake: reported as one line, exit status 2."""


class CannotRender(Exception):
    """The engine cannot render these inputs: reported as one line, exit status 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        return package_version("audiomixer")
    except PackageNotFoundError:  # run from a checkout without installing
        return "0+unknown"


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description="Separate (or take) stems, re-render them with style sounds, mix. Reads every audio "
        "format FFmpeg reads (WAV, FLAC, MP3, M4A/AAC, ALAC, Ogg, Opus/WebM, WMA, AIFF...).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    p.add_argument("song", nargs="?", type=Path, help="song to separate with Demucs")
    p.add_argument("--stems", type=Path, metavar="DIR", help="use DIR/{drums,bass,vocals,other}.wav|.flac")
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        metavar="OUT",
        help="mix file to write (.wav, .flac, .mp3)",
    )
    p.add_argument("--style", action="append", default=[], metavar="STEM=FILE", help="style sound for a stem")
    p.add_argument("--volume", action="append", default=[], metavar="STEM=X", help="stem volume, 0..2")
    p.add_argument("--mode", action="append", default=[], metavar="STEM=MODE", help="percussive or tonal")
    p.add_argument(
        "--grain-ms",
        type=int,
        default=GRAIN_MS_DEFAULT,
        help=f"grain duration in ms, {GRAIN_MS_MIN}..{GRAIN_MS_MAX}",
    )
    p.add_argument("--no-pitch-mapping", action="store_true", help="do not transpose grains to the stem's f0")
    p.add_argument("--no-envelope", action="store_true", help="do not impose the stem's loudness envelope")
    p.add_argument("--format", choices=OUTPUT_FORMATS, help="output format (default: from OUT's extension)")
    p.add_argument(
        "--seed", type=int, default=SEED_DEFAULT, help="grain-choice seed (same seed, same output)"
    )
    p.add_argument("--target-lufs", type=float, default=None, help="normalise the mix to this loudness")
    p.add_argument("--analysis", type=Path, metavar="FILE.json", help="write onsets and f0 per stem")
    p.add_argument("--stems-out", type=Path, metavar="DIR", help="also write the rendered stems here")
    p.add_argument(
        "--model",
        default=None,
        help="Demucs model name, e.g. htdemucs_ft, htdemucs, htdemucs_6s (default: DEMUCS_MODEL setting)",
    )
    p.add_argument(
        "--two-stems",
        default=None,
        metavar="STEM",
        help="separate into STEM and no_STEM only, e.g. vocals -> vocals + no_vocals",
    )
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
        if not STEM_NAME.match(stem):
            raise UsageError(f"unknown stem {stem!r} in {what} (e.g. {', '.join(STEMS)})")
        out[stem] = value
    return out


def _read_audio(path: Path, *, max_duration_s: float | None = None) -> tuple[np.ndarray, int]:
    """A file as the service keeps an upload: decoded and checked by the same code, normalised to its
    sample rate in stereo and stored as 24-bit FLAC (pipeline/ingest.py), then read back as the render
    stage reads it (pipeline/audio_files.py), so that both render the very same samples."""
    import io

    import soundfile as sf

    from audiomixer.dsp.audio_io import AudioDecodeError, AudioLimits, decode_audio, encode_audio, normalise
    from audiomixer.settings import get_settings

    if not path.is_file():
        raise UsageError(f"file not found: {path}")
    settings = get_settings()
    try:
        decoded = decode_audio(path.read_bytes(), AudioLimits.from_settings(max_duration_s=max_duration_s))
    except AudioDecodeError as exc:
        raise UsageError(f"cannot read {path}: {exc.reason}") from exc
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from exc
    sample_rate = settings.target_sample_rate
    stored = encode_audio(normalise(decoded, sample_rate), sample_rate, "flac")
    data, sr = sf.read(io.BytesIO(stored), dtype="float32", always_2d=True)
    return data, int(sr)


def _probe_audio(path: Path, max_duration_s: float | None = None) -> None:
    """Refuse a file that is not usable audio before any work, with the service's reasons."""
    from audiomixer.dsp.audio_io import AudioDecodeError, AudioLimits, probe

    try:
        probe(path.read_bytes(), AudioLimits.from_settings(max_duration_s=max_duration_s))
    except AudioDecodeError as exc:
        raise UsageError(f"cannot read {path}: {exc.reason}") from exc
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from exc


def _load_stem_dir(directory: Path) -> tuple[dict[str, np.ndarray], int]:
    if not directory.is_dir():
        raise UsageError(f"stems directory not found: {directory}")
    stems: dict[str, np.ndarray] = {}
    sr: int | None = None
    for stem in KNOWN_STEMS:
        path = next(
            (directory / f"{stem}{ext}" for ext in STEM_EXTENSIONS if (directory / f"{stem}{ext}").is_file()),
            None,
        )
        if path is None:
            continue
        stems[stem], sr = _read_audio(path)
    if not stems or sr is None:
        raise UsageError(
            f"no stems in {directory} (expected {', '.join(s + '.wav' for s in STEMS)} or .flac)"
        )
    return stems, sr


def _separate(
    song: Path,
    model: str | None,
    repo: Path | None,
    two_stems: str | None = None,
    on_progress: Any = None,
) -> tuple[dict[str, np.ndarray], int]:
    if not song.is_file():
        raise UsageError(f"file not found: {song}")
    try:
        from audiomixer.separation import separate_file
    except ImportError as exc:
        raise UsageError(
            f"separation is not available ({exc}); install the 'gpu' extra or pass --stems DIR"
        ) from exc
    try:
        stems = separate_file(song, model_name=model, repo=repo, two_stems=two_stems, on_progress=on_progress)
    except Exception as exc:
        raise UsageError(f"separation failed: {exc}") from exc
    from audiomixer.settings import get_settings

    sample_rate = get_settings().target_sample_rate
    return {k: np.asarray(v, np.float32) for k, v in stems.items()}, sample_rate


def _output_format(out: Path, fmt: str | None) -> str:
    """The format from OUT's extension, or --format when the name has none of ours; never both
    disagreeing (MP3 bytes in a .wav)."""
    ext = out.suffix.lower().lstrip(".")
    if fmt and ext in OUTPUT_FORMATS and ext != fmt:
        raise UsageError(
            f"-o {out} is a .{ext} name but --format is {fmt}; "
            f"name the file {out.with_suffix('.' + fmt).name} or leave out --format"
        )
    if fmt:
        return fmt
    if ext not in OUTPUT_FORMATS:
        raise UsageError(
            f"cannot tell the format from {out.name!r}: name it .wav, .flac or .mp3, or add --format "
            f"{{{','.join(OUTPUT_FORMATS)}}}"
        )
    return ext


def _check_writable(target: Path, option: str, folder: bool = False, example: str = "") -> None:
    """Refuse, before any work, an output that cannot be written: a folder given as a file, a file given
    as a folder or as a parent folder, a place without write permission (/proc, read-only mounts)."""
    if not folder and target.is_dir():
        raise UsageError(f"{option} {target} is a folder; give a file name, e.g. {target / example}")
    if folder and target.exists() and not target.is_dir():
        raise UsageError(f"{option} {target} is a file; give a folder for the stems")
    existing = target if folder else target.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{option} {target}: {existing} is a file, not a folder; choose another path")
    if not folder and target.exists() and not os.access(target, os.W_OK):
        raise UsageError(f"{option} {target}: the file is read-only; choose another name")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise UsageError(
            f"{option} {target}: cannot write in {existing} ({exc.strerror or exc}); choose a folder you can "
            "write to"
        ) from None


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _progress(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, file=sys.stderr, desc="remix", unit="step", leave=False)


def _mix_settings(args: argparse.Namespace, fmt: str) -> MixSettings:
    if not GRAIN_MS_MIN <= args.grain_ms <= GRAIN_MS_MAX:
        raise UsageError(f"--grain-ms must be within {GRAIN_MS_MIN}..{GRAIN_MS_MAX}, got {args.grain_ms}")
    try:
        return MixSettings.model_validate(
            {
                "grain_duration_ms": args.grain_ms,
                "use_pitch_mapping": not args.no_pitch_mapping,
                "use_envelope": not args.no_envelope,
                "seed": args.seed,
                "output_format": fmt,
                "target_lufs": args.target_lufs,
            }
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        raise UsageError(f"--{str(error['loc'][0]).replace('_', '-')}: {error['msg']}") from None


def _check_separation_options(args: argparse.Namespace) -> None:
    """The same checks as the API's, and the stems named in options against the model's, before work."""
    from audiomixer.settings import get_settings
    from audiomixer.stem_sets import SeparationOptionError, check_options, expected_stems

    settings = get_settings()
    repo = args.model_repo or settings.demucs_repo
    try:
        check_options(args.model, args.two_stems, repo=repo, default=settings.demucs_model)
    except SeparationOptionError as exc:
        raise UsageError(str(exc)) from None
    model = args.model or settings.demucs_model
    if model in PRETRAINED_MODELS:  # its stems are known before separating
        _check_stems(args, expected_stems(model, args.two_stems))


def _check_stems(args: argparse.Namespace, stems: Sequence[str]) -> None:
    """Every stem named in --style/--volume/--mode is one of `stems` (the song's, or its model's)."""
    for what, items in (("--style", args.style), ("--volume", args.volume), ("--mode", args.mode)):
        unknown = [stem for stem in _pairs(items, what) if stem not in stems]
        if unknown:
            raise UsageError(f"unknown stem {unknown[0]!r} in {what} (the stems are {', '.join(stems)})")


def _stem_config(args: argparse.Namespace, stems: Sequence[str]) -> dict[str, StemConfig]:
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
    return {
        stem: StemConfig(volume=volumes.get(stem, 1.0), mode=modes.get(stem, "auto"))  # type: ignore[arg-type]
        for stem in stems
    }


def run(args: argparse.Namespace) -> int:
    from audiomixer.dsp.audio_io import encode_audio
    from audiomixer.dsp.mixer import true_peak_dbtp
    from audiomixer.dsp.render import (
        RenderError,
        StyleSound,
        encode_mix,
        grain_table,
        render_mix,
        stem_analysis,
    )
    from audiomixer.settings import get_settings

    if (args.song is None) == (args.stems is None):
        raise UsageError("give either SONG or --stems DIR")
    _check_writable(args.output, "-o", example="remix.wav")
    fmt = _output_format(args.output, args.format)
    settings = _mix_settings(args, fmt)
    styles_paths = {k: Path(v) for k, v in _pairs(args.style, "--style").items()}
    _stem_config(args, [])  # volumes and modes checked before any work
    if args.song is not None:
        _check_separation_options(args)
    elif args.model or args.two_stems:
        raise UsageError("--model and --two-stems choose how SONG is separated; they do nothing with --stems")
    for path in [p for p in (args.song, *styles_paths.values()) if p is not None]:
        if not path.is_file():
            raise UsageError(f"file not found: {path}")
    if args.stems_out is not None:
        _check_writable(args.stems_out, "--stems-out", folder=True)
    if args.analysis is not None:
        _check_writable(args.analysis, "--analysis", example="analysis.json")
    # Refuse a file that is not audio before loading a model or analysing anything.
    if args.song is not None:
        _probe_audio(args.song)
    for path in styles_paths.values():
        _probe_audio(path, get_settings().style_sound_max_duration_s)

    want_analysis = args.analysis is not None
    # Separation counts 100 (its chunks report percent), loading given stems 1; every later step 1. The
    # total is made exact once the stems are known, so the bar ends at 100 %.
    load_units = 1 if args.song is None else 100
    bar = _progress(load_units + len(STEMS) + 2 * len(styles_paths) + 1, not args.no_progress)

    def step(label: str, units: int = 1) -> None:
        if bar is not None:
            bar.set_postfix_str(label)
            bar.update(units)

    def separated(percent: int, message: str) -> None:
        step(message, max(0, min(percent, load_units) - (bar.n if bar is not None else 0)))

    try:
        if args.stems is not None:
            stems, sr = _load_stem_dir(args.stems)
        else:
            stems, sr = _separate(
                args.song, args.model, args.model_repo, args.two_stems, on_progress=separated
            )
        if bar is not None:
            analysed = sum(1 for s in stems if want_analysis or s in styles_paths)
            bar.total = load_units + analysed + 2 * len(styles_paths) + 1
        step("stems", load_units - (bar.n if bar is not None else 0))
        _check_stems(args, ordered(stems))
        config = _stem_config(args, ordered(stems))

        analyses = {}
        for stem in ordered(stems):
            if stem in stems and (want_analysis or stem in styles_paths):
                analyses[stem] = stem_analysis(stems[stem], sr)
                step(f"analyse {stem}")
        styles: dict[str, StyleSound] = {}
        for stem, path in styles_paths.items():
            max_s = get_settings().style_sound_max_duration_s
            style, style_sr = _read_audio(path, max_duration_s=max_s)
            styles[stem] = StyleSound(
                style, style_sr, grain_table(style, style_sr, settings.grain_duration_ms)
            )
            step(f"style {stem}")

        def stem_ready(stem: str, samples: np.ndarray) -> None:
            if stem in styles:
                step(f"render {stem}")
            if args.stems_out is not None:
                _write(args.stems_out / f"{stem}.wav", encode_audio(samples, sr, "wav"))

        mix = render_mix(
            stems, sr, settings, config=config, analyses=analyses, styles=styles, on_stem=stem_ready
        )
        step("mix")
        _write(args.output, encode_mix(mix, sr, settings))
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
    except RenderError as exc:
        raise CannotRender(str(exc)) from exc
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
    except CannotRender as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except SystemExit as exc:  # --help
        return int(exc.code or 0) if isinstance(exc.code, int | None) else 2


if __name__ == "__main__":
    sys.exit(main())
