"""Optional dependencies: the core imports and runs without them; each names its extra."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from atmospec._optional import EXTRAS, require
from atmospec.errors import AtmospecError, MissingDependencyError

ROOT = Path(__file__).resolve().parents[1]
OPTIONAL = sorted({m for mods in EXTRAS.values() for m in mods})

# A finder placed first on sys.meta_path that makes every optional module look uninstalled,
# exactly as in a core-only installation (`pip install atmospec` without extras).
BLOCKER = textwrap.dedent(
    f"""
    import sys

    BLOCKED = {OPTIONAL!r}

    class _Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None

    sys.meta_path.insert(0, _Blocker())
    """
)


def _run_blocked(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "blocked.py"
    script.write_text(BLOCKER + textwrap.dedent(code))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )


def _pyproject() -> dict:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _dist_name(requirement: str) -> str:
    """``"batman-package>=2.4"`` -> ``"batman-package"`` (normalised as in PEP 503)."""
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert match is not None, requirement
    name = match.group(0)
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(requirements: list[str]) -> set[str]:
    """Distributions a list of requirements installs by name; ``dask[distributed]`` counts
    ``distributed`` too (dask's extra of that name is the ``distributed`` package)."""
    names = set()
    for req in requirements:
        names.add(_dist_name(req))
        extras = re.search(r"\[([^\]]*)\]", req)
        if extras and _dist_name(req) == "dask":
            names.update(_dist_name(e) for e in extras.group(1).split(","))
    return names


def test_every_extra_in_the_code_is_declared_and_provides_its_modules():
    extras = _pyproject()["project"]["optional-dependencies"]
    installed = packages_distributions()
    for extra, modules in EXTRAS.items():
        declared = _declared(extras[extra])
        for module in modules:
            providers = {_dist_name(d) for d in installed.get(module, [])}
            assert providers & declared, f"{module} (from {providers}) not in [{extra}]"
    # `all` installs every extra, and nothing in the code names an undeclared one
    assert extras["all"] == [f"atmospec[{','.join(EXTRAS)}]"]
    core = _declared(_pyproject()["project"]["dependencies"])
    for module in OPTIONAL:
        assert not core & {_dist_name(d) for d in installed.get(module, [])}, module


def test_require_returns_the_module_and_refuses_a_wrong_extra():
    assert require("zarr.storage", "scale").__name__ == "zarr.storage"
    with pytest.raises(ValueError, match="'tune' does not provide zarr"):
        require("zarr", "tune")


def test_missing_dependency_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "celerite2", None)  # makes `import celerite2` fail
    with pytest.raises(MissingDependencyError) as info:
        require("celerite2", "transit")
    assert "pip install 'atmospec[transit]'" in str(info.value)
    assert isinstance(info.value, AtmospecError) and isinstance(info.value, ImportError)


def test_core_imports_and_cli_run_without_any_optional_dependency(tmp_path):
    """Every module of the package imports, and ``atmospec --help`` plus each command group's
    help run, while every optional module is blocked."""
    proc = _run_blocked(
        """
        import importlib, pkgutil
        import atmospec

        names = [m.name for m in pkgutil.walk_packages(atmospec.__path__, "atmospec.")]
        for name in names:
            importlib.import_module(name)
        leaked = sorted(m for m in sys.modules if m.partition(".")[0] in BLOCKED)
        assert not leaked, leaked

        from typer.testing import CliRunner
        from atmospec.cli.main import app

        runner = CliRunner()
        top = runner.invoke(app, ["--help"])
        assert top.exit_code == 0, top.output
        groups = ["transit", "scale", "molecules", "highres", "posterior", "stats", "data"]
        for group in groups:
            res = runner.invoke(app, [group, "--help"])
            assert res.exit_code == 0, (group, res.output)
        print("imported", len(names), "modules")
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    n = int(re.search(r"imported (\d+) modules", proc.stdout).group(1))
    assert n > 100  # the whole package was walked, not an empty list


def test_a_command_needing_an_extra_exits_non_zero_naming_it(tmp_path):
    proc = _run_blocked(
        """
        sys.argv = ["atmospec", "tune", "--config", "no-such-recipe.toml"]
        from atmospec.cli.main import main

        main()
        """,
        tmp_path,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "pip install 'atmospec[tune]'" in proc.stderr
    assert "Traceback" not in proc.stderr
