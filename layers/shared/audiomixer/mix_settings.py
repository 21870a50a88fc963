"""The settings of one mix, defined once: the API's request body, the stored Mix row, the render stage,
the render engine's entry and `audiomixer remix` all use these models, so every default and limit lives
here and nowhere else.

Pure pydantic (no numpy): the API imports it without the audio stack.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

GRAIN_MS_DEFAULT = 120
GRAIN_MS_MIN = 10
GRAIN_MS_MAX = 1000
VOLUME_MAX = 2.0
SEED_DEFAULT = 0  # fixed, so that a mix rendered twice with the same settings sounds the same
SEED_MAX = 2**32 - 1
TARGET_LUFS_MIN = -40.0
TARGET_LUFS_MAX = 0.0

OutputFormat = Literal["wav", "flac", "mp3"]
OUTPUT_FORMATS: tuple[OutputFormat, ...] = ("wav", "flac", "mp3")
StemMode = Literal["auto", "percussive", "tonal"]


class StemConfig(BaseModel):
    """How one stem enters the mix."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    style_sound_id: str | None = Field(
        default=None, description="re-render this stem from this library sound; null keeps the original audio"
    )
    volume: float = Field(default=1.0, ge=0.0, le=VOLUME_MAX)
    mode: StemMode = Field(
        default="auto",
        description="how a re-rendered stem is followed: hits trigger grains (percussive) or grains track "
        "its pitch and envelope (tonal); auto decides from the stem's analysis",
    )


class MixSettings(BaseModel):
    """How the re-rendered stems are made and the mix is written."""

    model_config = ConfigDict(extra="forbid")

    grain_duration_ms: int = Field(default=GRAIN_MS_DEFAULT, ge=GRAIN_MS_MIN, le=GRAIN_MS_MAX)
    use_pitch_mapping: bool = True
    use_envelope: bool = True
    seed: int = Field(
        default=SEED_DEFAULT,
        ge=0,
        le=SEED_MAX,
        description="grain-choice seed: the same stems, sounds and settings give the same audio",
    )
    output_format: OutputFormat = "wav"
    target_lufs: float | None = Field(
        default=None, ge=TARGET_LUFS_MIN, le=TARGET_LUFS_MAX, description="loudness target; null: none"
    )
