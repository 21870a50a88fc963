"""`audiomixer bench quality` end to end on one short song: the nine bars and both baselines are reported,
and an engine that crashes on a song is a failed song, not a crashed benchmark. Needs fluidsynth (see
test_quality_corpus.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from audiomixer_tools.bench import corpus as C
from audiomixer_tools.bench import quality


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    why = C.missing_tools()
    if why is not None:
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail(
                f"the quality bench needs fluidsynth and soundfonts in CI (CI=true): {why}", pytrace=False
            )
        pytest.skip(f"quality corpus unavailable: {why}")
    return tmp_path_factory.mktemp("corpus")


def _run(corpus_dir: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> tuple[dict, str]:  # type: ignore[type-arg]
    argv = ["--songs", "1", "--seconds", "5", "--corpus", str(corpus_dir), "--json", str(out), "--no-pin"]
    assert quality.main(argv) == 0
    return json.loads(out.read_text()), capsys.readouterr().out


def test_bench_reports_nine_bars_beside_both_baselines(
    corpus_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc, text = _run(corpus_dir, tmp_path / "q.json", capsys)
    assert [b["key"] for b in doc["bars"]] == [b.key for b in quality.BARS] and len(doc["bars"]) == 9
    song = doc["songs"][0]
    assert song["name"] == C.SONGS[0].name and song["error"] is None
    # The untouched stems score what untouched stems must: their own envelope, silence and length, and
    # no timbre moved; the librosa baseline saw the same drums as the "untouched" render measure.
    untouched = song["untouched"]
    assert untouched["envelope_correlation"] == pytest.approx(1.0)
    assert untouched["silence_kept"] == 1.0 and untouched["same_length"] == 1.0
    assert untouched["timbre_moves"] == 0.0
    assert untouched["rendered_drum_onset_f1"] == song["librosa"]["drum_onset_f1"] > 0.8
    for key in ("drum_onset_f1", "bass_rpa", "bass_voicing_recall", "rendered_bass_rpa", "timbre_moves"):
        assert 0.0 <= song["engine"][key] <= 1.0, key
    assert song["engine"]["analysis_rtf"] > 0 and song["engine"]["mix_true_peak_dbtp"] < 0.1
    assert set(song["details"]) >= {"drums", "bass", "other", "kinds"}
    lines = [ln for ln in text.splitlines() if ln.startswith(("PASS", "FAIL"))]
    assert len(lines) == 9
    assert "baseline (a): the stems untouched" in text and "baseline (b): librosa defaults" in text
    assert song["untouched"]["clipped_samples"] == 0.0


def test_an_engine_crash_is_a_failed_song(
    corpus_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from audiomixer.dsp import render

    def crash(*args: object, **kwargs: object) -> None:
        raise ValueError("'x' must be finite")

    monkeypatch.setattr(render, "render_stem", crash)  # what `remix` renders each styled stem with
    doc, text = _run(corpus_dir, tmp_path / "q.json", capsys)
    song = doc["songs"][0]
    assert "must be finite" in song["error"]
    assert "RENDER FAILED" in text
    bars = {b["key"]: b for b in doc["bars"]}
    # The analysis still counts; every render bar fails with the crashed song counted as 0.
    assert bars["drum_onset_f1"]["engine"] > 0.5
    for key in ("rendered_drum_onset_f1", "envelope_correlation", "same_length", "true_peak_ok"):
        assert bars[key]["engine"] == 0.0 and not bars[key]["pass"]
