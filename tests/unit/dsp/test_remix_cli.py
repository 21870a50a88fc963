"""The `audiomixer remix` command, through main([...]) on synthetic files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiomixer.dsp.mixer import true_peak_dbtp
from audiomixer_tools import signals as S
from audiomixer_tools.remix import main

SR = 44100


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("remix")
    stems_dir = root / "stems"
    stems_dir.mkdir()
    stems, _ = S.synth_song(6.0, SR, seed=5)
    for name, data in stems.items():
        ext = ".flac" if name == "bass" else ".wav"
        if name == "other":
            continue  # a missing stem is allowed
        sf.write(stems_dir / f"{name}{ext}", data, SR)
    sf.write(root / "kit.wav", S.style_kit(SR, kit=1), SR)
    sf.write(root / "synth.flac", S.style_tone(SR, f0_hz=220.0, timbre="square"), SR)
    return {"root": root, "stems": stems_dir, "kit": root / "kit.wav", "synth": root / "synth.flac"}


def test_remix_from_stems_with_two_styles(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "mix.wav"
    analysis = tmp_path / "analysis.json"
    stems_out = tmp_path / "rendered"
    rc = main(
        [
            "--stems", str(files["stems"]), "-o", str(out),
            "--style", f"drums={files['kit']}", "--style", f"bass={files['synth']}",
            "--volume", "vocals=0.8", "--grain-ms", "80", "--seed", "3",
            "--analysis", str(analysis), "--stems-out", str(stems_out), "--no-progress",
        ]
    )  # fmt: skip
    assert rc == 0
    data, sr = sf.read(out, dtype="float32", always_2d=True)
    assert sr == SR and data.shape == (6 * SR, 2)
    assert true_peak_dbtp(data, SR) <= -0.9  # 16-bit rounding on top of the -1 dBTP limiter
    doc = json.loads(analysis.read_text())
    assert set(doc) == {"sample_rate", "stems"}
    assert doc["sample_rate"] == SR
    assert set(doc["stems"]) == {"drums", "bass", "vocals"}
    for stem in doc["stems"].values():
        assert set(stem) == {"onsets_s", "f0_times_s", "f0_hz", "voiced_prob"}
        assert len(stem["f0_times_s"]) == len(stem["f0_hz"]) == len(stem["voiced_prob"])
        assert all(f == 0 or f > 30 for f in stem["f0_hz"])
    assert len(doc["stems"]["drums"]["onsets_s"]) > 15
    assert sorted(p.name for p in stems_out.iterdir()) == ["bass.wav", "drums.wav", "vocals.wav"]
    drums_in, _ = sf.read(files["stems"] / "drums.wav", dtype="float32")
    drums_out, _ = sf.read(stems_out / "drums.wav", dtype="float32")
    assert drums_out.shape == drums_in.shape and not np.allclose(drums_out, drums_in, atol=1e-3)
    vocals_in, _ = sf.read(files["stems"] / "vocals.wav", dtype="float32")
    vocals_out, _ = sf.read(stems_out / "vocals.wav", dtype="float32")
    np.testing.assert_allclose(vocals_out, vocals_in, atol=1e-4)  # unstyled stems pass through


def test_remix_formats_and_determinism(files: dict[str, Path], tmp_path: Path) -> None:
    args = ["--stems", str(files["stems"]), "--style", f"drums={files['kit']}", "--no-progress"]
    assert main([*args, "-o", str(tmp_path / "a.flac")]) == 0
    assert main([*args, "-o", str(tmp_path / "b.flac")]) == 0
    a, _ = sf.read(tmp_path / "a.flac")
    b, _ = sf.read(tmp_path / "b.flac")
    np.testing.assert_array_equal(a, b)
    assert main([*args, "-o", str(tmp_path / "c.out"), "--format", "mp3"]) == 0
    assert sf.info(str(tmp_path / "c.out")).format == "MP3"


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--style", "piano=kit.wav"], "unknown stem"),
        (["--style", "drums=nope.wav"], "not found"),
        (["--volume", "drums=3"], "0..2"),
        (["--volume", "drums=loud"], "not a number"),
        (["--grain-ms", "5"], "10..1000"),
        (["--grain-ms", "80.5"], "invalid int value"),
        (["--seed", "-1"], "--seed: Input should be greater than or equal to 0"),
        (["--target-lufs", "3"], "--target-lufs: Input should be less than or equal to 0"),
        (["--mode", "bass=wobbly"], "percussive or tonal"),
        (["--bogus"], "unrecognized"),
    ],
)
def test_clear_one_line_errors(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], needle: str
) -> None:
    extra = [e.replace("kit.wav", str(files["kit"])) for e in extra]
    rc = main(["--stems", str(files["stems"]), "-o", str(tmp_path / "x.wav"), "--no-progress", *extra])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and needle in err, err


def test_missing_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-o", str(tmp_path / "x.wav")]) == 2
    assert main([str(tmp_path / "missing.wav"), "-o", str(tmp_path / "x.wav")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["--stems", str(tmp_path / "nodir"), "-o", str(tmp_path / "x.wav")]) == 2
    (tmp_path / "empty").mkdir()
    assert main(["--stems", str(tmp_path / "empty"), "-o", str(tmp_path / "x.wav")]) == 2
    assert "no stems" in capsys.readouterr().err
    assert main(["--stems", str(tmp_path / "empty"), "-o", str(tmp_path / "x.xyz")]) == 2
    assert main(["--help"]) == 0


@pytest.mark.slow
def test_remix_a_song_through_demucs(files: dict[str, Path], tmp_path: Path) -> None:
    pytest.importorskip("demucs")
    stems, _ = S.synth_song(4.0, SR, seed=6)
    song = tmp_path / "song.wav"
    sf.write(song, 0.5 * sum(stems.values()), SR)
    out = tmp_path / "mix.wav"
    analysis = tmp_path / "a.json"
    rc = main(
        [str(song), "-o", str(out), "--model", "demucs_unittest", "--style", f"drums={files['kit']}",
         "--analysis", str(analysis), "--no-progress"]
    )  # fmt: skip
    assert rc == 0
    data, sr = sf.read(out, always_2d=True)
    assert sr == SR and data.shape == (4 * SR, 2)
    assert set(json.loads(analysis.read_text())["stems"]) == {"drums", "bass", "vocals", "other"}


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--model", "htdemucs_7s"], "unknown Demucs model 'htdemucs_7s': choose one of htdemucs_ft"),
        (["--model", "htdemucs", "--two-stems", "piano"], "two_stems 'piano' is not a source"),
        (["--two-stems", "vocals", "--style", "drums=kit.wav"], "unknown stem 'drums' in --style"),
        (
            ["--model", "htdemucs_6s", "--volume", "banjo=1"],
            "the stems are drums, bass, vocals, other, guitar",
        ),
    ],
)
def test_separation_option_mistakes_are_one_line_before_any_work(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], needle: str
) -> None:
    extra = [e.replace("kit.wav", str(files["kit"])) for e in extra]
    song = tmp_path / "song.wav"
    sf.write(song, np.zeros((SR, 2)), SR)
    rc = main([str(song), "-o", str(tmp_path / "x.wav"), "--no-progress", *extra])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and needle in err, err
    assert not (tmp_path / "x.wav").exists()


@pytest.mark.slow
def test_remix_two_stems_through_demucs(files: dict[str, Path], tmp_path: Path) -> None:
    pytest.importorskip("demucs")
    stems, _ = S.synth_song(3.0, SR, seed=6)
    song = tmp_path / "song.wav"
    sf.write(song, 0.5 * sum(stems.values()), SR, subtype="PCM_24")
    out, stems_out = tmp_path / "mix.wav", tmp_path / "stems"
    rc = main(
        [str(song), "-o", str(out), "--model", "demucs_unittest", "--two-stems", "vocals",
         "--style", f"no_vocals={files['kit']}", "--volume", "vocals=0.5", "--stems-out", str(stems_out),
         "--no-progress"]
    )  # fmt: skip
    assert rc == 0
    assert sorted(p.name for p in stems_out.iterdir()) == ["no_vocals.wav", "vocals.wav"]
    assert sf.read(out, always_2d=True)[0].shape == (3 * SR, 2)
