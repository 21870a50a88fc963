"""One render path: a song's stems re-rendered from style sounds and mixed under one `MixSettings`.

The render stage (`audiomixer.pipeline.render`) and `audiomixer remix` both call `render_mix`, so the same
stems, style sounds and settings give bit-identical audio through the service and the CLI. The engine
always sees analyses and grain tables in the precision the service stores them with (`to_dict` rounds):
`stem_analysis` and `grain_table` build them that way in-process, and the service reads them back from
its JSON objects unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from ..mix_settings import MixSettings, StemConfig
from .analysis import StemAnalysis, analyse_stem
from .grains import GrainTable, analyse_style_sound
from .granular import render_stem
from .mixer import mix_stems


@dataclass(frozen=True)
class StyleSound:
    """A style sound's samples ((n,) or (n, channels) float) and its grain table at the mix's grain."""

    samples: np.ndarray
    sample_rate: int
    grain_table: GrainTable


class RenderError(ValueError):
    """These inputs cannot be rendered (the engine raised on them, or nothing is left to mix): the same
    inputs would fail again, so retrying cannot help."""

    @classmethod
    def from_engine(cls, what: str, cause: Exception) -> RenderError:
        return cls(f"{what} failed ({type(cause).__name__}: {cause})")


def stem_analysis(samples: np.ndarray, sample_rate: int) -> StemAnalysis:
    """Analyse a stem as the analyse stage does and return it as the render stage reads it back."""
    return StemAnalysis.from_dict(analyse_stem(samples, sample_rate).to_dict())


def grain_table(samples: np.ndarray, sample_rate: int, grain_duration_ms: int) -> GrainTable:
    """A style sound's grain table at `grain_duration_ms`, as the service stores and reads it back."""
    table = analyse_style_sound(samples, sample_rate, grain_ms=grain_duration_ms)
    return GrainTable.from_dict(table.to_dict())


def render_mix(
    stems: Mapping[str, np.ndarray],
    sample_rate: int,
    settings: MixSettings,
    *,
    config: Mapping[str, StemConfig],
    analyses: Mapping[str, StemAnalysis],
    styles: Mapping[str, StyleSound],
    on_stem: Callable[[str, np.ndarray], None] | None = None,
) -> np.ndarray:
    """Re-render every stem that has a style sound, then mix.

    Parameters
    ----------
    stems : mapping of stem name to (n,) or (n, channels) float audio at `sample_rate`
        Every stem of the song, in mix order. A stem whose config says ``enabled=False`` is left out.
    sample_rate : int
        Sample rate of the stems in Hz.
    settings : MixSettings
        Grain, pitch mapping, envelope, seed and loudness target of the mix.
    config : mapping of stem name to StemConfig
        Volume, mode and enable flag per stem; a stem absent here is mixed unchanged at volume 1.0.
    analyses : mapping of stem name to StemAnalysis
        The analysis of every stem in `styles`.
    styles : mapping of stem name to StyleSound
        The stems to re-render and the sound to re-render each from.
    on_stem : callable, optional
        Called with the stem's name and audio once it is ready (re-rendered or passed through).

    Returns
    -------
    mix : np.ndarray
        float32 (n, channels), true-peak limited.

    Raises
    ------
    RenderError
        When the engine raises on a stem, a style sound or the mix: retrying cannot help.
    """
    rendered: dict[str, np.ndarray] = {}
    volumes: dict[str, float] = {}
    for name, samples in stems.items():
        stem_config = config.get(name) or StemConfig()
        if not stem_config.enabled:
            continue
        style = styles.get(name)
        if style is not None:
            try:
                samples = render_stem(
                    samples,
                    sample_rate,
                    analyses[name],
                    style.samples,
                    style.sample_rate,
                    style.grain_table,
                    grain_ms=settings.grain_duration_ms,
                    use_pitch_mapping=settings.use_pitch_mapping,
                    use_envelope=settings.use_envelope,
                    mode=stem_config.mode,
                    seed=settings.seed,
                )
            except Exception as exc:
                raise RenderError.from_engine(f"re-rendering the {name} stem", exc) from exc
        rendered[name] = samples
        volumes[name] = stem_config.volume
        if on_stem is not None:
            on_stem(name, samples)
    if not rendered:
        raise RenderError("every stem is disabled: enable at least one stem")
    try:
        return mix_stems(rendered, volumes, sample_rate, target_lufs=settings.target_lufs)
    except Exception as exc:
        raise RenderError.from_engine("mixing", exc) from exc


def encode_mix(mix: np.ndarray, sample_rate: int, settings: MixSettings) -> bytes:
    """The mix as a file in the settings' output format (the same bytes from the service and the CLI)."""
    from .audio_io import encode_audio

    try:
        return encode_audio(mix, sample_rate, settings.output_format)
    except Exception as exc:
        raise RenderError.from_engine(f"encoding the mix as {settings.output_format}", exc) from exc
