"""The formats FFmpeg brings (M4A with AAC or ALAC, Opus in WebM, WMA), made in the test with PyAV's own
encoders and decoded by audiomixer.dsp.audio_io: the right codec, length, pitch and level per channel.
(Cut and damaged versions of the same files are in the hostile corpus.)"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from audiomixer.dsp.audio_io import AudioLimits, decode_audio, normalise, probe, sniff_format
from audiomixer.settings import Settings

CORPUS_SCRIPT = Path(__file__).resolve().parents[1] / "data" / "hostile" / "make_corpus.py"


def _corpus() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hostile_corpus", CORPUS_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


corpus = _corpus()

# name -> (container as FFmpeg names it, codec, rate, lossless, frames the encoder may drop at the end)
EXPECT = {
    "m4a_aac": ("mp4", "aac", 44100, False, 0),
    "m4a_alac": ("mp4", "alac", 44100, True, 0),
    "webm_opus": ("matroska", "opus", 48000, False, 0),
    # The WMA encoder drops the last partial frame (2048 samples).
    "wma": ("asf", "wmav2", 44100, False, 2048),
}


def sine(sr: int, seconds: float = 1.5) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    x = 0.5 * np.sin(2 * np.pi * 440.0 * t)
    return np.stack([x, 0.5 * x], axis=1).astype(np.float32)  # channels differ so a swap would show


def peak_hz(x: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(x.mean(axis=1) * np.hanning(len(x)), n=1 << 18))
    return float(np.argmax(spectrum) * sr / (1 << 18))


@pytest.mark.parametrize("name", list(EXPECT))
def test_ffmpeg_formats_decode(name: str) -> None:
    fmt, codec, sr, lossless, dropped = EXPECT[name]
    x = sine(sr)
    data = corpus.encode_ffmpeg(x, name, sr)
    assert sniff_format(data) == fmt

    info = probe(data, AudioLimits.from_settings(Settings()))
    assert (info.format, info.codec, info.sample_rate, info.channels) == (fmt, codec, sr, 2)

    decoded = decode_audio(data, AudioLimits.from_settings(Settings()))
    y = decoded.samples
    assert y.dtype == np.float32 and y.shape[1] == 2 and decoded.info.codec == codec
    assert x.shape[0] - dropped <= y.shape[0] <= x.shape[0]
    n = y.shape[0]
    assert peak_hz(y, sr) == pytest.approx(440.0, rel=0.005)
    if lossless:
        assert np.abs(y - x[:n]).max() <= 1 / 32768 + 1e-6
    for c in range(2):
        level = 20 * np.log10(
            np.sqrt(np.mean(y[sr // 10 : -sr // 10, c] ** 2)) / np.sqrt(np.mean(x[:, c] ** 2))
        )
        assert level == pytest.approx(0.0, abs=1.0), (name, c, level)
    # The service's own rate and layout, whatever came in.
    out = normalise(decoded, 44100)
    assert out.shape[1] == 2 and abs(out.shape[0] - round(n * 44100 / sr)) <= 2


def test_surround_aac_folds_by_ffmpeg_channel_names() -> None:
    # 5.1 AAC: FFmpeg names the channels; the centre reaches both sides at -3 dB, the LFE neither.
    sr = 48000
    t = np.arange(sr) / sr
    tones = [0.2 * np.sin(2 * np.pi * f * t) for f in (300.0, 500.0, 700.0, 60.0, 1100.0, 1300.0)]
    x = np.stack(tones, axis=1).astype(np.float32)
    data = corpus.encode_ffmpeg(x, "m4a_aac", sr, layout="5.1")
    decoded = decode_audio(data, AudioLimits.from_settings(Settings()))
    assert decoded.info.positions[:4] == ("FL", "FR", "FC", "LFE")
    out = normalise(decoded, sr)

    def level(ch: np.ndarray, f: float) -> float:
        spectrum = np.abs(np.fft.rfft(ch * np.hanning(len(ch)))) / len(ch)
        k = round(f * len(ch) / sr)
        return float(spectrum[k - 2 : k + 3].max())

    ref = level(out[:, 0], 300.0)
    assert level(out[:, 1], 300.0) < ref * 0.05
    assert level(out[:, 0], 700.0) == pytest.approx(ref / np.sqrt(2), rel=0.15)
    assert level(out[:, 1], 700.0) == pytest.approx(ref / np.sqrt(2), rel=0.15)
    assert level(out[:, 0], 60.0) < ref * 0.05 and level(out[:, 1], 60.0) < ref * 0.05
