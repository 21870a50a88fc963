"""audiomixer.dsp.render: the one render path of the render stage and `audiomixer remix`."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from audiomixer.dsp.mixer import mix_stems
from audiomixer.dsp.render import RenderError, StyleSound, grain_table, render_mix, stem_analysis
from audiomixer.mix_settings import MixSettings, StemConfig
from audiomixer_tools import signals as S

SR = 44100


@pytest.fixture(scope="module")
def stems() -> dict[str, np.ndarray]:
    stems, _ = S.synth_song(2.0, SR, seed=2)
    return stems


def test_unstyled_stems_are_mixed_as_the_mixer_mixes_them(stems: dict[str, np.ndarray]) -> None:
    config = {"vocals": StemConfig(enabled=False), "drums": StemConfig(volume=0.5)}
    out = render_mix(stems, SR, MixSettings(), config=config, analyses={}, styles={})
    expected = mix_stems({k: v for k, v in stems.items() if k != "vocals"}, {"drums": 0.5}, SR)
    np.testing.assert_array_equal(out, expected)


def test_a_styled_stem_follows_the_settings_and_reaches_on_stem(stems: dict[str, np.ndarray]) -> None:
    style = S.style_tone(SR, f0_hz=220.0, timbre="square")
    seen: list[str] = []

    def render(settings: MixSettings) -> np.ndarray:
        styles = {"bass": StyleSound(style, SR, grain_table(style, SR, settings.grain_duration_ms))}
        analyses = {"bass": stem_analysis(stems["bass"], SR)}
        return render_mix(
            stems,
            SR,
            settings,
            config={},
            analyses=analyses,
            styles=styles,
            on_stem=lambda n, _: seen.append(n),
        )

    base = render(MixSettings(grain_duration_ms=60, seed=1))
    assert seen == list(stems)
    np.testing.assert_array_equal(base, render(MixSettings(grain_duration_ms=60, seed=1)))
    assert not np.array_equal(base, render(MixSettings(grain_duration_ms=60, seed=2)))
    assert not np.array_equal(base, render(MixSettings(grain_duration_ms=200, seed=1)))
    plain = render_mix(stems, SR, MixSettings(), config={}, analyses={}, styles={})
    assert not np.allclose(base, plain, atol=1e-3)


def test_the_engine_raising_on_a_stem_names_the_stem(stems: dict[str, np.ndarray]) -> None:
    style = S.style_tone(SR, f0_hz=220.0)
    empty = StyleSound(np.zeros(0, np.float32), SR, grain_table(style, SR, 120))
    with pytest.raises(RenderError, match=r"^re-rendering the bass stem failed \(ValueError: "):
        render_mix(
            stems,
            SR,
            MixSettings(),
            config={},
            analyses={"bass": stem_analysis(stems["bass"], SR)},
            styles={"bass": empty},
        )


def test_nothing_enabled_is_a_render_error(stems: dict[str, np.ndarray]) -> None:
    config = {name: StemConfig(enabled=False) for name in stems}
    with pytest.raises(RenderError, match="every stem is disabled"):
        render_mix(stems, SR, MixSettings(), config=config, analyses={}, styles={})


def assert_same(a: object, b: object) -> None:
    assert type(a) is type(b)
    for field in dataclasses.fields(a):  # type: ignore[arg-type]
        x, y = getattr(a, field.name), getattr(b, field.name)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype, field.name
            np.testing.assert_array_equal(x, y, err_msg=field.name)
        else:
            assert x == y, field.name


def test_analyses_and_tables_are_what_the_service_reads_back(stems: dict[str, np.ndarray]) -> None:
    """The CLI renders from the very numbers the service stores as JSON and reads back (to_dict rounds)."""
    from audiomixer.dsp.analysis import StemAnalysis, analyse_stem
    from audiomixer.dsp.grains import GrainTable, analyse_style_sound

    style = S.style_tone(SR, f0_hz=110.0)
    stored_table = json.loads(json.dumps(analyse_style_sound(style, SR, grain_ms=80).to_dict()))
    assert_same(grain_table(style, SR, 80), GrainTable.from_dict(stored_table))
    stored_analysis = json.loads(json.dumps(analyse_stem(stems["bass"], SR).to_dict()))
    assert_same(stem_analysis(stems["bass"], SR), StemAnalysis.from_dict(stored_analysis))
