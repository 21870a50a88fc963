"""The settings of one mix, defined once: the API's request body, the stored Mix row, the render stage,
the render engine's entry and `audiomixer remix` all use these models, so every default and limit lives
here and nowhere else.

Pure pydantic (no numpy): the API imports it without the audio stack.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

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


def _not_a_bool(value: Any) -> Any:
    # Pydantic takes true for 1 in a number field, which then fails a range check with a misleading message.
    if isinstance(value, bool):
        raise ValueError(f"send a number, not {str(value).lower()}")
    return value


NotBool = BeforeValidator(_not_a_bool)


class StemConfig(BaseModel):
    """How one stem enters the mix."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    style_sound_id: str | None = Field(
        default=None, description="re-render this stem from this library sound; null keeps the original audio"
    )
    volume: Annotated[float, NotBool] = Field(default=1.0, ge=0.0, le=VOLUME_MAX, allow_inf_nan=False)
    mode: StemMode = Field(
        default="auto",
        description="how a re-rendered stem is followed: hits trigger grains (percussive) or grains track "
        "its pitch and envelope (tonal); auto decides from the stem's analysis",
    )


class MixSettings(BaseModel):
    """How the re-rendered stems are made and the mix is written."""

    model_config = ConfigDict(extra="forbid")

    grain_duration_ms: Annotated[int, NotBool] = Field(
        default=GRAIN_MS_DEFAULT, ge=GRAIN_MS_MIN, le=GRAIN_MS_MAX
    )
    use_pitch_mapping: bool = True
    use_envelope: bool = True
    seed: int = Field(
        default=SEED_DEFAULT,
        ge=0,
        le=SEED_MAX,
        description="grain-choice seed: the same stems, sounds and settings give the same audio",
    )
    output_format: OutputFormat = "wav"
    target_lufs: Annotated[float | None, NotBool] = Field(
        default=None,
        ge=TARGET_LUFS_MIN,
        le=TARGET_LUFS_MAX,
        allow_inf_nan=False,
        description="loudness target; null: none",
    )
