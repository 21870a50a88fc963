"""Ingest refuses audio whose float32 decode would not fit its function's memory, before decoding it."""

from __future__ import annotations

import pytest
from audio_helpers import synth_song

from audiomixer.pipeline import ingest
from audiomixer.pipeline.sqs import PermanentError
from audiomixer.settings import Settings
from audiomixer.store import keys


def test_audio_whose_decode_exceeds_the_memory_budget_is_refused_with_advice() -> None:
    upload = keys.UploadKey("t1", "base-track", keys.new_id(), None)
    wav = synth_song(2.0, sr=44100)  # 2 s stereo: 0.67 MB as float32
    _flac, duration = ingest._decode(wav, upload, Settings(max_decoded_mb=1))
    assert duration == pytest.approx(2.0, abs=0.01)
    with pytest.raises(PermanentError, match=r"needs 1 MB decoded \(limit 0 MB\); export it as stereo"):
        ingest._decode(wav, upload, Settings(max_decoded_mb=0))


def test_the_worst_case_the_limits_allow_fits_the_budget_only_when_it_should() -> None:
    settings = Settings()
    ingest._check_decoded_size(96_000, 2, settings.max_duration_s, settings)  # 15 min, 96 kHz stereo
    with pytest.raises(
        PermanentError, match=r"too large to process: 15\.0 minutes at 192000 Hz in 8 channels"
    ):
        ingest._check_decoded_size(
            settings.max_sample_rate, settings.max_channels, settings.max_duration_s, settings
        )
