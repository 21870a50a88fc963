"""Pure audio code (numpy/scipy/librosa/soundfile; no AWS): stem analysis, style-sound grain tables,
granular re-rendering and mixing with a true-peak limiter (quality metrics, a development tool, are in
audiomixer_tools.metrics).

Names are exported lazily so that importing a light submodule (``audiomixer.dsp.audio_io``) does not pull
in scipy and librosa.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .analysis import StemAnalysis, analyse_stem
    from .grains import GrainTable, analyse_style_sound
    from .granular import render_stem
    from .mixer import limit_true_peak, mix_stems, true_peak_dbtp

_EXPORTS = {
    "StemAnalysis": "analysis",
    "analyse_stem": "analysis",
    "GrainTable": "grains",
    "analyse_style_sound": "grains",
    "render_stem": "granular",
    "mix_stems": "mixer",
    "limit_true_peak": "mixer",
    "true_peak_dbtp": "mixer",
}

__all__ = [
    "GrainTable",
    "StemAnalysis",
    "analyse_stem",
    "analyse_style_sound",
    "limit_true_peak",
    "mix_stems",
    "render_stem",
    "true_peak_dbtp",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
