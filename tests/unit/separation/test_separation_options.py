"""Separation options: the model names Demucs knows, the stem set each model and mode gives, and the
separation job writing that set (two-stem mode with demucs_unittest, six stems with a tiny random
htdemucs_6s saved offline into a DEMUCS_REPO folder), summing back to the input exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from separation_source import BUCKET, SOURCE, SR, s3_with_source, song
from tiny_demucs import SIX_SOURCES, save_tiny_model

from audiomixer.separation import job
from audiomixer.separation.chunked import FULL_SCALE, separate_to_files
from audiomixer.separation.job import run_separation_job, separate_file
from audiomixer.separation.model import load_model
from audiomixer.stem_sets import (
    PRETRAINED_MODELS,
    PRETRAINED_SIGNATURES,
    UNITTEST_MODEL,
    SeparationOptionError,
    check_options,
    expected_stems,
    stem_set,
)

PREFIX = "t1/projects/p1/stems"
FOUR = ["drums", "bass", "vocals", "other"]
SIX = ["drums", "bass", "vocals", "other", "guitar", "piano"]


def _ints(path: Path) -> np.ndarray:
    return sf.read(str(path), dtype="int32", always_2d=True)[0].astype(np.int64) >> 8


# ------------------------------------------------------------------ names and stem sets


def test_the_model_names_are_what_the_installed_demucs_knows() -> None:
    import demucs.pretrained

    remote = Path(demucs.pretrained.REMOTE_ROOT)
    assert set(PRETRAINED_MODELS) - {UNITTEST_MODEL} == {p.stem for p in remote.glob("*.yaml")}
    files = [line for line in (remote / "files.txt").read_text().splitlines() if line.endswith(".th")]
    assert set(PRETRAINED_SIGNATURES) == {line.split("-")[0] for line in files}
    assert list(load_model(UNITTEST_MODEL).sources) == list(PRETRAINED_MODELS[UNITTEST_MODEL][0])


def test_stem_sets_of_each_model_and_mode() -> None:
    assert stem_set(["drums", "bass", "other", "vocals"]).names == tuple(FOUR)
    assert stem_set(SIX_SOURCES).names == tuple(SIX)
    assert stem_set(SIX_SOURCES, "vocals").names == ("vocals", "no_vocals")
    assert stem_set(SIX_SOURCES, "guitar").residual == "no_guitar"
    # No `other`: the last source is the residual.
    assert stem_set(["speech", "music", "noise"]).residual == "noise"
    with pytest.raises(SeparationOptionError, match="drums, bass, other, vocals"):
        stem_set(["drums", "bass", "other", "vocals"], "guitar")
    assert expected_stems(None, None, default="htdemucs_ft") == FOUR
    assert expected_stems("htdemucs_6s", None) == SIX
    assert expected_stems("htdemucs", "vocals") == ["vocals", "no_vocals"]


def test_options_are_checked_with_the_choices_in_the_message(tmp_path: Path) -> None:
    check_options(None, None)
    check_options("htdemucs_6s", "guitar")
    check_options("mdx_extra", "vocals")
    check_options("955717e8", None)
    with pytest.raises(SeparationOptionError) as err:
        check_options("htdemucs_7s", None)
    for name in ("htdemucs_7s", "htdemucs_ft", "htdemucs_6s", "mdx_extra"):
        assert name in str(err.value)
    with pytest.raises(SeparationOptionError, match="guitar"):
        check_options("htdemucs", "guitar")
    with pytest.raises(SeparationOptionError, match="not a stem name"):
        check_options(None, "Vocals/../x")
    # A DEMUCS_REPO folder adds its own models.
    with pytest.raises(SeparationOptionError):
        check_options("mine", None)
    (tmp_path / "mine.yaml").write_text("models: ['abc']\n")
    check_options("mine", None, repo=tmp_path)


# ------------------------------------------------------------------ the separation


@pytest.fixture
def s3(tmp_path: Path) -> Any:
    yield from s3_with_source(tmp_path)


def _run(s3: Any, tmp_path: Path, prefix: str = PREFIX, **kw: Any) -> dict[str, str]:
    args: dict[str, Any] = {
        "s3": s3,
        "bucket": BUCKET,
        "source_key": SOURCE,
        "stems_prefix": prefix,
        "checkpoint_prefix": prefix + "-checkpoints",
        "model_name": UNITTEST_MODEL,
        "repo": None,
        "chunk_s": 0.75,
        "overlap_s": 0.25,
        "segment": 1.0,
        "work_dir": tmp_path,
        **kw,
    }
    return run_separation_job(**args)


def _download(s3: Any, keys: dict[str, str], tmp_path: Path) -> dict[str, np.ndarray]:
    out = {}
    for stem, key in keys.items():
        path = tmp_path / f"{key.replace('/', '_')}"
        s3.download_file(BUCKET, key, str(path))
        out[stem] = _ints(path)
    return out


def test_two_stem_job_keeps_the_models_vocals_and_the_rest_sums_exactly(
    s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    four = _download(s3, _run(s3, tmp_path, prefix="four"), tmp_path)
    keys = _run(s3, tmp_path, two_stems="vocals")
    assert keys == {"vocals": f"{PREFIX}/vocals.flac", "no_vocals": f"{PREFIX}/no_vocals.flac"}
    two = _download(s3, keys, tmp_path)
    source = np.rint(song() * FULL_SCALE).astype(np.int64)
    assert np.array_equal(two["vocals"] + two["no_vocals"], source)
    # The same model output as the 4-stem run: vocals identical, no_vocals = drums + bass + other.
    assert np.array_equal(two["vocals"], four["vocals"])
    assert np.array_equal(two["no_vocals"], four["drums"] + four["bass"] + four["other"])
    assert np.abs(two["vocals"]).max() > 0

    # Rerun: the stems name their set, so nothing is loaded; another mode of the same model runs again.
    monkeypatch.setattr(job, "load_model", lambda *a, **k: pytest.fail("model loaded again"))
    assert _run(s3, tmp_path, two_stems="vocals") == keys
    with pytest.raises(pytest.fail.Exception, match="model loaded again"):
        _run(s3, tmp_path, two_stems="drums")


def test_six_stem_model_from_a_repo_gives_guitar_and_piano(tmp_path: Path) -> None:
    repo = save_tiny_model(tmp_path / "repo", "htdemucs_6s", SIX_SOURCES)
    model = load_model("htdemucs_6s", repo)
    source = tmp_path / "song.flac"
    sf.write(str(source), song(), SR, subtype="PCM_24")
    result = separate_to_files(
        source, tmp_path / "six", model=model, model_name="htdemucs_6s", chunk_s=0.75, overlap_s=0.25
    )
    assert list(result.paths) == SIX
    stems = {stem: _ints(path) for stem, path in result.paths.items()}
    assert np.array_equal(sum(stems.values()), _ints(source))
    assert np.abs(stems["guitar"]).max() > 0 and np.abs(stems["piano"]).max() > 0
    two = separate_to_files(
        source, tmp_path / "two", model=model, model_name="htdemucs_6s", chunk_s=0.75, two_stems="guitar"
    )
    assert list(two.paths) == ["guitar", "no_guitar"]
    assert np.array_equal(_ints(two.paths["guitar"]), stems["guitar"])


def test_separate_file_takes_the_same_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = save_tiny_model(tmp_path / "repo", "htdemucs_6s", SIX_SOURCES)
    path = tmp_path / "song.wav"
    sf.write(str(path), song(1.5), SR, subtype="PCM_24")
    assert list(separate_file(path, "htdemucs_6s", repo=repo)) == SIX
    stems = separate_file(path, UNITTEST_MODEL, two_stems="vocals")
    assert list(stems) == ["vocals", "no_vocals"]
