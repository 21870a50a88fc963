"""`audiomixer remix` with the files people have (M4A/AAC, ALAC, Opus in WebM, WMA, made here with PyAV's
encoders), and every user mistake answered with one line on stderr, exit status 2 and nothing written."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from audiomixer.dsp.audio_io import resample
from audiomixer_tools import signals as S
from audiomixer_tools.remix import main

SR = 44100
ROOT = Path(__file__).resolve().parents[3]


def _corpus() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "hostile_corpus", ROOT / "tests/data/hostile/make_corpus.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


corpus = _corpus()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("remix-formats")
    stems, _ = S.synth_song(4.0, SR, seed=7)
    stems_dir = root / "stems"
    stems_dir.mkdir()
    # One stem per format FFmpeg brings; Opus is always 48 kHz and is resampled on the way in.
    made = {"drums": ("m4a_aac", ".m4a", SR), "bass": ("m4a_alac", ".m4a", SR)}
    made |= {"vocals": ("webm_opus", ".webm", 48000), "other": ("wma", ".wma", SR)}
    for stem, (name, ext, sr) in made.items():
        x = resample(np.asarray(stems[stem], np.float32), SR, sr)
        (stems_dir / f"{stem}{ext}").write_bytes(corpus.encode_ffmpeg(np.asarray(x, np.float32), name, sr))
    kit = root / "kit.m4a"
    kit.write_bytes(corpus.encode_ffmpeg(S.style_kit(SR, kit=1).astype(np.float32), "m4a_aac"))
    song = root / "song.m4a"
    song.write_bytes(corpus.encode_ffmpeg(0.5 * sum(stems.values()).astype(np.float32), "m4a_aac"))
    (root / "notes.mp3").write_text("These are my lyrics, la la la.\n" * 20)
    (root / "file.txt").write_text("not a folder\n")
    (root / "folder").mkdir()
    return {"root": root, "stems": stems_dir, "kit": kit, "song": song}


def test_remix_reads_m4a_alac_opus_and_wma(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "mix.flac"
    args = [
        "--stems",
        str(files["stems"]),
        "-o",
        str(out),
        "--style",
        f"drums={files['kit']}",
        "--no-progress",
    ]
    assert main(args) == 0
    data, sr = sf.read(out, dtype="float32", always_2d=True)
    assert sr == SR and data.shape[1] == 2
    assert abs(data.shape[0] - 4 * SR) <= 2048  # the WMA encoder drops its last partial frame
    assert np.sqrt(np.mean(data**2)) > 0.01


@pytest.mark.slow
def test_remix_separates_an_m4a_song_and_its_bar_reaches_100(
    files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("demucs")
    import audiomixer_tools.remix as remix

    bars: list[Any] = []
    updates: list[tuple[int, str]] = []
    make = remix._progress

    def recording(total: int, enabled: bool) -> Any:
        bar = make(total, enabled)
        postfix = bar.set_postfix_str

        def record(text: str) -> None:  # (count before the step, its label)
            updates.append((bar.n, text))
            postfix(text)

        bar.set_postfix_str = record
        bars.append(bar)
        return bar

    monkeypatch.setattr(remix, "_progress", recording)
    song = files["song"]
    out = tmp_path / "mix.wav"
    argv = [str(song), "-o", str(out), "--model", "demucs_unittest", "--style", f"drums={files['kit']}"]
    assert main(argv) == 0
    data, sr = sf.read(out, always_2d=True)
    assert sr == SR and abs(data.shape[0] - 4 * SR) <= 1
    (bar,) = bars
    assert bar.n == bar.total  # 100 %
    # Separation moved the bar chunk by chunk (one 40 s segment here) before the later steps.
    labels = [text for _, text in updates]
    assert labels[0] == "separated chunk 1 of 1" and labels[1] == "stems", updates
    assert [n for n, text in updates if text == "stems"] == [100]


# Every mistake from issue 14, and their siblings: (arguments, words the one line must hold).
# {root} is the fixture folder; "-o" is added as {out} where the case does not give its own.
MISTAKES = [
    (["{song}", "-o", "/proc/x.wav"], "cannot write in /proc"),
    (["{song}", "-o", "{root}/file.txt/x.wav"], "is a file, not a folder"),
    (["{song}", "-o", "{root}/folder"], "is a folder"),
    (["{stems}", "-o", "{out}", "--stems-out", "/proc/stems"], "cannot write in /proc"),
    (["{stems}", "-o", "{out}", "--stems-out", "{root}/file.txt"], "is a file"),
    (["{stems}", "-o", "{out}", "--stems-out", "{root}/file.txt/sub"], "is a file, not a folder"),
    (["{stems}", "-o", "{out}", "--analysis", "/proc/a.json"], "cannot write in /proc"),
    (["{stems}", "-o", "{out}", "--analysis", "{root}/folder"], "is a folder"),
    (["{stems}", "-o", "{out}", "--analysis", "{root}/file.txt/a.json"], "is a file, not a folder"),
    (["{root}/notes.mp3", "-o", "{out}"], "not audio: it looks like a text file"),
    (["{stems}", "-o", "{out}", "--style", "drums={root}/notes.mp3"], "not audio"),
    (["{stems}", "-o", "{out}", "--format", "mp3"], "is a .wav name but --format is mp3"),
    (["{stems}", "-o", "{out}", "--target-lufs", "10"], "less than or equal to 0"),
    (["{stems}", "-o", "{out}", "--target-lufs", "-90"], "greater than or equal to -40"),
    (["{stems}", "-o", "{root}/x.xyz"], "cannot tell the format"),
    (["{stems}", "-o", "{out}", "--grain-ms", "5"], "10..1000"),
    (["{stems}", "-o", "{out}", "--bogus"], "unrecognized"),
    (["{stems}"], "required: -o"),
    (["{root}/missing.wav", "-o", "{out}"], "not found"),
]


def _argv(case: list[str], files: dict[str, Path], out: Path) -> list[str]:
    subs = {"{song}": str(files["song"]), "{root}": str(files["root"]), "{out}": str(out)}
    argv = []
    for arg in case:
        if arg == "{stems}":
            argv += ["--stems", str(files["stems"])]
            continue
        for key, value in subs.items():
            arg = arg.replace(key, value)
        argv.append(arg)
    return [*argv, "--no-progress"]


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize(("case", "words"), MISTAKES, ids=[" ".join(c) for c, _ in MISTAKES])
def test_every_mistake_is_one_line_exit_2_nothing_written(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], case: list[str], words: str
) -> None:
    before = _tree(files["root"])
    rc = main(_argv(case, files, tmp_path / "out.wav"))
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert rc == 2
    assert len(lines) == 1 and lines[0].startswith("audiomixer remix: error: "), captured.err
    assert words in lines[0], lines[0]
    assert captured.out == ""
    assert list(tmp_path.iterdir()) == [] and _tree(files["root"]) == before


def test_console_script_has_no_traceback_and_tells_its_version(
    files: dict[str, Path], tmp_path: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-m", "audiomixer_tools.cli"]
    done = subprocess.run(
        [*cmd, "remix", str(files["root"] / "notes.mp3"), "-o", str(tmp_path / "x.wav")],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and "text file" in done.stderr, done.stderr
    assert list(tmp_path.iterdir()) == []
    for argv in (["--version"], ["remix", "--version"]):
        done = subprocess.run([*cmd, *argv], capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0 and done.stdout.strip().split()[-1][0].isdigit(), done


def test_help_shows_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    assert "(default: 120)" in text and "--version" in text and "(default 120)" not in text
