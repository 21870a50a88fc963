"""The hostile-upload corpus (tests/data/hostile/make_corpus.py): every case is refused with a clear
AudioDecodeError, never a crash or a hang; and random damage to valid files never escapes as anything
but AudioDecodeError or a clean decode."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
import zlib
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from audiomixer.dsp.audio_io import ERROR_HTTP_STATUS, AudioDecodeError, AudioLimits, decode_audio, probe
from audiomixer.settings import Settings

CORPUS_SCRIPT = Path(__file__).resolve().parents[1] / "data" / "hostile" / "make_corpus.py"


def _load_corpus_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hostile_corpus", CORPUS_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses need the module registered
    spec.loader.exec_module(module)
    return module


corpus = _load_corpus_module()
CASES = corpus.build_corpus()


def _limits(case: Any) -> AudioLimits:
    return dataclasses.replace(AudioLimits.from_settings(Settings()), **case.limits)


def test_corpus_is_big_enough_and_ids_are_unique() -> None:
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)
    assert sum(len(c.data) for c in CASES) < 8 * 1024 * 1024


@pytest.mark.timeout(30)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_decode_refuses_with_actionable_reason(case: Any) -> None:
    with pytest.raises(AudioDecodeError) as excinfo:
        decode_audio(case.data, _limits(case))
    err = excinfo.value
    assert err.code in case.codes, f"{case.id}: got {err.code}: {err.reason}"
    assert err.reason.strip()
    assert any(word.lower() in err.reason.lower() for word in case.words), err.reason
    assert err.code in ERROR_HTTP_STATUS and 400 <= err.http_status < 500
    assert isinstance(err, ValueError)


HEADER_LEVEL = [c for c in CASES if c.header_level]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("case", HEADER_LEVEL, ids=[c.id for c in HEADER_LEVEL])
def test_probe_refuses_before_decoding(case: Any) -> None:
    with pytest.raises(AudioDecodeError) as excinfo:
        probe(case.data, _limits(case))
    assert excinfo.value.code in case.codes


def test_write_corpus_to_disk(tmp_path: Path) -> None:
    assert corpus.main(["make_corpus.py", str(tmp_path)]) == 0
    assert len(list(tmp_path.iterdir())) == len(CASES)


def _mutations(data: bytes, rng: np.random.Generator, count: int) -> list[bytes]:
    out = []
    for i in range(count):
        buf = bytearray(data)
        kind = i % 4
        if kind == 0:  # flip a few random bytes
            for pos in rng.integers(0, len(buf), size=int(rng.integers(1, 8))):
                buf[pos] ^= int(rng.integers(1, 256))
        elif kind == 1:  # cut anywhere, losing at least 64 bytes
            buf = buf[: int(rng.integers(0, len(buf) - 64))]
        elif kind == 2:  # overwrite a run with random bytes
            start = int(rng.integers(0, len(buf)))
            length = int(rng.integers(1, 2048))
            buf[start : start + length] = rng.bytes(min(length, len(buf) - start))
        else:  # damage the first 64 bytes, where the headers live
            for pos in rng.integers(0, min(64, len(buf)), size=3):
                buf[pos] = int(rng.integers(0, 256))
        out.append(bytes(buf))
    return out


@pytest.mark.timeout(60)
@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg", "mp3", "aiff", *corpus.FFMPEG_FORMATS])
def test_random_damage_never_crashes(fmt: str) -> None:
    rng = np.random.default_rng(zlib.crc32(fmt.encode()))
    valid = (corpus.valid_files() | corpus.valid_ffmpeg_files())[fmt]
    limits = AudioLimits.from_settings(Settings())
    for i, damaged in enumerate(_mutations(valid, rng, 60)):
        try:
            decoded = decode_audio(damaged, limits)
        except AudioDecodeError as err:
            assert err.reason.strip() and err.code in ERROR_HTTP_STATUS
            continue
        # Every cut file must be refused: a truncated upload is never half-accepted.
        assert i % 4 != 1, f"a file cut to {len(damaged)} of {len(valid)} bytes was accepted"
        # Accepted: then it must be real, finite audio of the declared shape.
        assert decoded.samples.dtype == np.float32
        assert decoded.samples.shape == (decoded.info.frames, decoded.info.channels)
        assert np.isfinite(decoded.samples).all()
        assert decoded.info.duration_s >= limits.min_duration_s
