"""What ships to AWS: `sam build SharedLayer` (offline) on a copy of the template and layers/shared, with
the build leftovers a dev checkout has there (egg-info, bytecode), and the file list it packages."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
# The extras that run in AWS (Lambda layer/images, the Batch image); local and dev never ship.
SHIPPED_EXTRAS = ("api", "audio", "gpu")


def _sam() -> str | None:
    candidate = Path(sys.executable).with_name("sam")
    return str(candidate) if candidate.exists() else shutil.which("sam")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"required in CI (CI=true): {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def built_layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sam = _sam()
    if sam is None:
        _unavailable("sam CLI not installed (pip install aws-sam-cli, see pyproject dev extra)")
    src = tmp_path_factory.mktemp("src")
    shutil.copy(ROOT / "template.yaml", src / "template.yaml")
    shutil.copytree(ROOT / "layers", src / "layers", ignore=shutil.ignore_patterns(".mypy_cache"))
    # What `pip install -e .` and running the tests leave in a dev checkout must not ship.
    (src / "layers/shared/audiomixer.egg-info").mkdir(exist_ok=True)
    (src / "layers/shared/audiomixer.egg-info/SOURCES.txt").write_text("tools/audiomixer_tools/cli.py\n")
    (src / "layers/shared/audiomixer/__pycache__").mkdir(exist_ok=True)
    (src / "layers/shared/audiomixer/__pycache__/settings.cpython-311.pyc").write_bytes(b"\0")
    build = src / "build"
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": "us-east-1"}
    result = subprocess.run(
        [
            sam,
            "build",
            "SharedLayer",
            "--build-dir",
            str(build),
            "--template-file",
            str(src / "template.yaml"),
        ],
        cwd=src,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return build / "SharedLayer"


def _files(layer: Path) -> list[str]:
    return sorted(str(p.relative_to(layer)) for p in layer.rglob("*") if p.is_file())


def test_the_layer_holds_only_the_service_package(built_layer: Path) -> None:
    """Exactly the package's tracked files under python/ (SAM's layout) with the bytecode of each module,
    and nothing beside them (no leftovers of a dev checkout, no build files)."""
    files = _files(built_layer)
    print("\n".join(files))  # the shipped file list, for the record (pytest -s)
    tracked = subprocess.run(
        ["git", "ls-files", "layers/shared/audiomixer"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    sources = [Path("python") / Path(f).relative_to("layers/shared") for f in tracked]
    bytecode = [p.parent / "__pycache__" / f"{p.stem}.cpython-311.pyc" for p in sources if p.suffix == ".py"]
    assert files == sorted(str(p) for p in sources + bytecode)


def test_the_layer_bytecode_is_used_without_checking_the_sources(built_layer: Path) -> None:
    """Lambda's /opt is read-only: without valid shipped .pyc files every cold start compiles every module
    again. Unchecked-hash files (PEP 552) stay valid whatever times the zip gives the sources."""
    import importlib.util

    for pyc in (built_layer / "python").rglob("*.pyc"):
        header = pyc.read_bytes()[:8]
        assert header[:4] == importlib.util.MAGIC_NUMBER, pyc
        assert int.from_bytes(header[4:8], "little") == 0b01, f"{pyc}: not an unchecked-hash pyc"


def _shipped_distributions() -> set[str]:
    """Every distribution the shipped extras need, with their own dependencies (as installed here)."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    todo = [Requirement(r) for r in project["dependencies"]]
    for extra in SHIPPED_EXTRAS:
        todo += [Requirement(r) for r in project["optional-dependencies"][extra]]
    seen: set[str] = set()
    while todo:
        req = todo.pop()
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(req.name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        todo += [
            r for r in map(Requirement, requires) if r.marker is None or r.marker.evaluate({"extra": ""})
        ]
    return seen


def _type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and ast.unparse(test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")


def _imports(path: Path) -> set[str]:
    """Top-level names a module imports at run time (`if TYPE_CHECKING:` blocks never run)."""
    names: set[str] = set()
    todo: list[ast.AST] = [ast.parse(path.read_text(encoding="utf-8"))]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif _type_checking(node):
            todo += getattr(node, "orelse", [])
            continue
        todo += ast.iter_child_nodes(node)
    return names


def test_no_shipped_module_imports_development_code(built_layer: Path) -> None:
    """Each import is the standard library, audiomixer itself, or a distribution the shipped extras
    install: nothing from the local stack, the tools, or the local/dev extras (moto, pytest, mir_eval...)."""
    allowed = _shipped_distributions()
    by_module = importlib.metadata.packages_distributions()
    bad = {}
    for path in (built_layer / "python").rglob("*.py"):
        for name in _imports(path) - set(sys.stdlib_module_names) - {"audiomixer"}:
            dists = {re.sub(r"[-_.]+", "-", d).lower() for d in by_module.get(name, [name])}
            if not dists & allowed:
                bad[str(path.relative_to(built_layer))] = name
    assert not bad, f"shipped modules importing development-only code: {bad}"


def test_the_images_install_only_the_service_package(tmp_path: Path) -> None:
    """The Dockerfiles copy pyproject.toml, README.md and layers/shared and pip-install that: the wheel
    it makes holds the audiomixer package only (the dev packages' folders are not there to find)."""
    import zipfile

    src = tmp_path / "src"
    (src / "layers").mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(
        ROOT / "layers" / "shared", src / "layers" / "shared", ignore=shutil.ignore_patterns("*.egg-info")
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "out"),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = (tmp_path / "out").glob("*.whl")
    top = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert {t for t in top if not t.endswith(".dist-info")} == {"audiomixer"}, top
