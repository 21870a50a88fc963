"""Separation options (Demucs model, two-stem mode) and the stem set each one gives.

Pure and torch-free: the API validates a project's options with it and the separation job derives the
stems it writes from the loaded model's `sources` with `stem_set`. The names below are what the installed
demucs package knows (its `remote/` folder: `{name}.yaml` bags and the single-model signatures of
`files.txt`); a unit test keeps them equal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audiomixer.settings import STEMS

UNITTEST_MODEL = "demucs_unittest"
_FOUR = ("drums", "bass", "other", "vocals")  # model.sources of every 4-source Demucs model
_SIX = ("drums", "bass", "other", "vocals", "guitar", "piano")

# name -> (model.sources, note for the README / error messages)
PRETRAINED_MODELS: dict[str, tuple[tuple[str, ...], str]] = {
    "htdemucs_ft": (_FOUR, "default; Hybrid Transformer fine-tuned per source (bag of 4), best quality"),
    "htdemucs": (_FOUR, "Hybrid Transformer, one model: about 4x faster than htdemucs_ft"),
    "htdemucs_6s": (_SIX, "adds guitar and piano (piano is experimental)"),
    "hdemucs_mmi": (_FOUR, "Hybrid Demucs v3 trained on MusDB + 800 songs"),
    "mdx": (_FOUR, "MDX challenge track A winner (MusDB HQ only)"),
    "mdx_extra": (_FOUR, "MDX challenge track B, trained with extra data"),
    "mdx_q": (_FOUR, "mdx, quantised (smaller download)"),
    "mdx_extra_q": (_FOUR, "mdx_extra, quantised (smaller download)"),
    "repro_mdx_a": (_FOUR, "reproduction of mdx"),
    "repro_mdx_a_hybrid_only": (_FOUR, "reproduction of mdx, hybrid models only"),
    "repro_mdx_a_time_only": (_FOUR, "reproduction of mdx, time-domain models only"),
    UNITTEST_MODEL: (_FOUR, "tiny random model Demucs builds without weights: for tests, poor stems"),
}
# Single models Demucs also loads by signature (files.txt); their sources are known once loaded.
PRETRAINED_SIGNATURES: tuple[str, ...] = (
    "0d19c1c6", "5d2d6c55", "7d865c68", "7ecf8ec1", "a1d90b5c", "c511e2ab", "cfa93e08", "e51eebcc",
    "6b9c2ca1", "b72baf4e", "42e558d4", "305bc58f", "14fc6a69", "464b36d7", "7fd6ef75", "83fc094f",
    "1ef250f1", "902315c2", "9a6b4851", "fa0cb7f9", "955717e8", "f7e0c4bc", "d12395a8", "92cfc3b6",
    "04573f0d", "75fc33f5", "5c90dfd2",
)  # fmt: skip
STEM_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
# Stems in this order wherever a project's stems are listed or mixed; the 4-stem order is the seed's.
_ORDER = (*STEMS, "guitar", "piano")
# Every stem a pretrained model can give, two-stem mode included (what a folder of stems may hold).
KNOWN_STEMS: tuple[str, ...] = (*_ORDER, *(f"no_{s}" for s in _ORDER))


class SeparationOptionError(ValueError):
    """A model name or two-stem mode the service cannot run; the message lists the choices."""


@dataclass(frozen=True)
class StemSet:
    """The stems one separation writes: `model_stems` come from the model, `residual` is the input minus
    their sum (so all of them add up to the input exactly)."""

    model_stems: tuple[str, ...]
    residual: str

    @property
    def names(self) -> tuple[str, ...]:
        """All the stems, in the API's order."""
        return tuple(ordered((*self.model_stems, self.residual)))


def stem_set(sources: Sequence[str], two_stems: str | None = None) -> StemSet:
    """The stems separating with a model of these `sources` gives.

    Two-stem mode keeps `two_stems` and makes `no_{two_stems}` the residual, as `demucs --two-stems`.
    Otherwise the residual is `other` (the last source when a model has none)."""
    sources = list(sources)
    if len(set(sources)) != len(sources) or not sources:
        raise SeparationOptionError(f"model sources {sources} are empty or repeat a name")
    if two_stems is not None:
        if two_stems not in sources:
            raise SeparationOptionError(
                f"two_stems {two_stems!r} is not a source of this model (choose from {', '.join(sources)})"
            )
        return StemSet((two_stems,), f"no_{two_stems}")
    residual = "other" if "other" in sources else sources[-1]
    return StemSet(tuple(s for s in sources if s != residual), residual)


def ordered(names: Iterable[str]) -> list[str]:
    """Stem names in the API's order: the seed's four, guitar, piano, then any others by name."""
    names = list(dict.fromkeys(names))
    rank = {name: i for i, name in enumerate(_ORDER)}
    return sorted(names, key=lambda n: (rank.get(n, len(rank)), n))


def repo_models(repo: str | Path | None) -> list[str]:
    """Models a DEMUCS_REPO folder holds (`{name}.yaml` bags), where this process can see it."""
    if not repo or not Path(repo).is_dir():
        return []
    return sorted(p.stem for p in Path(repo).glob("*.yaml"))


def model_choices(repo: str | Path | None = None, default: str | None = None) -> list[str]:
    extra = [*repo_models(repo), *([default] if default else [])]
    return list(dict.fromkeys([*PRETRAINED_MODELS, *PRETRAINED_SIGNATURES, *extra]))


def check_options(
    model: str | None,
    two_stems: str | None,
    *,
    repo: str | Path | None = None,
    default: str | None = None,
    served: Sequence[str] = (),
) -> None:
    """Raise SeparationOptionError, naming the choices, for a model or two-stem mode we cannot run.

    `model` None means the deployment's default; `repo` adds the models of a DEMUCS_REPO folder.
    `served`, when not empty, is all a deployment's separation image holds (settings.served_models).
    `two_stems` is checked against the model's sources when they are known before loading it."""
    name = model or default
    if model is not None and served and model not in served:
        raise SeparationOptionError(
            f"Demucs model {model!r} is not served by this deployment: choose one of {', '.join(served)} "
            "(gpu_batch/README.md says how to add a model to the separation image)"
        )
    if model is not None:
        choices = model_choices(repo, default)
        if model not in choices:
            named = ", ".join(c for c in choices if c not in PRETRAINED_SIGNATURES)
            raise SeparationOptionError(
                f"unknown Demucs model {model!r}: choose one of {named} (or a single-model signature "
                "Demucs lists, e.g. 955717e8)"
            )
    if two_stems is not None:
        if not STEM_NAME.match(two_stems):
            raise SeparationOptionError(f"two_stems {two_stems!r} is not a stem name (e.g. vocals)")
        known = PRETRAINED_MODELS.get(name or "")
        if known is not None:
            stem_set(known[0], two_stems)  # raises with the model's sources


def expected_stems(model: str | None, two_stems: str | None, default: str | None = None) -> list[str]:
    """The stems a project will have once separated, as far as they are known before the model loads
    (the seed's four for an unknown name: the separation job writes the real set)."""
    known = PRETRAINED_MODELS.get(model or default or "")
    sources = known[0] if known is not None else _FOUR
    if two_stems is not None and two_stems not in sources:
        return [two_stems, f"no_{two_stems}"]
    return list(stem_set(sources, two_stems).names)


def project_stems(project: Any, default_model: str | None = None) -> list[str]:
    """A Project row's stems in the API's order: the set its separation wrote once it has run, the set
    its options give before that, and the seed's four (uploaded or not) for bring-your-own stems."""
    stored = project.stems.as_dict() if project.stems is not None else {}
    if project.source_kind == "stems":
        return ordered([*STEMS, *stored])
    expected = expected_stems(project.separation_model, project.two_stems, default_model)
    # The options tell the set ahead of time; a set the job found otherwise (a DEMUCS_REPO model) wins.
    return expected if set(stored) <= set(expected) else ordered(stored)
