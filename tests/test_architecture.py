"""The package's shape: one-way data flow between layers, no import circles, small modules.

The import graph is read from the source with :mod:`ast` (no module is imported): every
``import atmospec...`` and ``from atmospec... import ...`` counts, at module level, inside
functions and under ``if TYPE_CHECKING:``. See docs/architecture.md for the picture.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).parents[1] / "src"

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "base",
        (
            "atmospec.errors",
            "atmospec._fileio",
            "atmospec._optional",
            "atmospec._logging",
            "atmospec.serialization",
            "atmospec.data",
            "atmospec.stats",
            "atmospec.plots",
            "atmospec.predictive_tails",
            "atmospec.lineshapes",
        ),
    ),
    (
        "spectra",
        (
            "atmospec.spectrum",
            "atmospec.io",
            "atmospec.transforms",
            "atmospec.resolution",
            "atmospec.library",
            "atmospec.photometry",
            "atmospec.sanity",
            # transmission spectra as published are read like any spectrum file (they need
            # only the errors below them); the flux-spectrum reader names them when it
            # refuses one (atmospec.io.other_kinds)
            "atmospec.molecules.io",
            "atmospec.molecules.columns",
            "atmospec.molecules.spectrum",
        ),
    ),
    ("grids", ("atmospec.grids",)),
    # The model-discrepancy model itself (artefact, covariance, likelihood): training draws
    # its realisations, fitting adds its covariance. Learning it from real spectra and the
    # fit-side hooks need classic fitting, so those modules sit in the fitting layer.
    ("discrepancy", ("atmospec.discrepancy",)),
    # The spectra store holds spectra resampled onto a training axis; batch runs read it.
    ("training", ("atmospec.training", "atmospec.scale.store")),
    # The neural posterior estimator, its flow, its calibration record, its simulator and the
    # added noise that brings a spectrum into its S/N range are estimators like the others
    # (the prediction layer loads them); the rest of posteriors/
    # (importance sampling, comparison with nested sampling, the pipeline) works on top of
    # classic fitting.
    (
        "estimators",
        (
            "atmospec.estimators",
            "atmospec.posteriors.npe",
            "atmospec.posteriors.flow",
            "atmospec.posteriors.calibration",
            "atmospec.posteriors.simulate",
            "atmospec.posteriors.degrade",
        ),
    ),
    ("models", ("atmospec.learning", "atmospec.models")),
    (
        "fitting",
        (
            "atmospec.fitting",
            "atmospec.discrepancy.route",
            "atmospec.discrepancy.learn",
            "atmospec.discrepancy.scaling",
            "atmospec.discrepancy.temperature",
            "atmospec.discrepancy.domain",
        ),
    ),
    ("prediction", ("atmospec.prediction",)),
    (
        "applications",
        (
            "atmospec.posteriors",
            "atmospec.multigrid",
            "atmospec.scale",
            "atmospec.report",
            "atmospec.molecules",
            "atmospec.highres",
            "atmospec.transit",
        ),
    ),
    ("interfaces", ("atmospec.demo", "atmospec.cli")),
)
"""Layers from the bottom up: a module may import its own layer and the layers below it."""

ALLOWED_CYCLE_EDGES: dict[tuple[str, str], str] = {
    ("atmospec.spectrum", "Spectrum.read"): "Spectrum.read delegates to atmospec.io.read",
    ("atmospec.spectrum", "Spectrum.write"): "Spectrum.write delegates to atmospec.io.write",
    ("atmospec.spectrum", "Spectrum.to_specutils"): "delegates to atmospec.io.specutils_bridge",
    ("atmospec.spectrum", "Spectrum.from_specutils"): "delegates to atmospec.io.specutils_bridge",
}
"""The one documented circle: Spectrum's convenience methods call the readers, which build
Spectrum objects. Only imports inside these methods may point back up to atmospec.io."""

MAX_LINES = 500
LONG_MODULES: dict[str, str] = {
    "atmospec.prediction.predictor": "the Predictor class: routing between the members of a "
    "model chain, OOD, rerouting and the per-member run share its state",
    "atmospec.prediction.engine": "one fast-inference Engine class (fused batch-norm, "
    "threads, bfloat16) and its tests of equivalence with the estimator",
    "atmospec.training.builder": "the training-set builder: planning, the off-node "
    "sampling loop and the HDF5 TrainingSet it writes",
    "atmospec.grids.grid": "the ModelGrid class (interpolation, slicing, storage)",
    "atmospec.estimators._neural": "the shared torch estimator base (fit loop, heads, "
    "ensembles, state)",
    "atmospec.posteriors.npe": "the NPEstimator class (fit, sample, save/load)",
    "atmospec.molecules.classifiers": "the molecule classifiers and their shipped models",
    "atmospec.demo": "the end-to-end demo job and its report",
}
"""Modules allowed over MAX_LINES, each with the reason it stays one file."""


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted((SRC / "atmospec").rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> Iterator[tuple[str, str]]:
    """(imported module, qualified name of the enclosing function or class) per import."""
    is_pkg = path.name == "__init__.py"

    def resolve(target: str) -> str:
        while target not in known and "." in target:
            target = target.rsplit(".", 1)[0]
        return target

    def walk(node: ast.AST, scope: str) -> Iterator[tuple[str, str]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                yield from walk(child, f"{scope}.{child.name}" if scope else child.name)
            elif isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.split(".")[0] == "atmospec":
                        yield resolve(alias.name), scope
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = name.split(".") if is_pkg else name.split(".")[:-1]
                    base = base[: len(base) - (child.level - 1)]
                    module = ".".join(base + ([child.module] if child.module else []))
                else:
                    module = child.module or ""
                if module.split(".")[0] != "atmospec":
                    continue
                for alias in child.names:
                    if module == "atmospec" and alias.name == "__version__":
                        continue  # package metadata, not code
                    full = f"{module}.{alias.name}"
                    yield (full if full in known else resolve(module)), scope
            else:
                yield from walk(child, scope)

    yield from walk(ast.parse(path.read_text(encoding="utf-8")), "")


@pytest.fixture(scope="module")
def graph() -> dict[str, set[tuple[str, str]]]:
    mods = _modules()
    known = set(mods)
    return {
        name: {(t, scope) for t, scope in _imports(name, path, known) if t != name}
        for name, path in mods.items()
    }


def _layer(module: str) -> int:
    best, rank = -1, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best:
                best, rank = len(p), i
    return rank


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_the_graph_sees_function_level_and_type_checking_imports(
    graph: dict[str, set[tuple[str, str]]],
) -> None:
    # fit() imports the chi-square fitter inside the function (a lazy import) and the
    # package names it under TYPE_CHECKING: both must appear, or the checks below are blind.
    targets = {t for t, _ in graph["atmospec.fitting"]}
    assert "atmospec.fitting.chi2" in targets
    scopes = {s for t, s in graph["atmospec.spectrum"] if t.startswith("atmospec.io")}
    assert "Spectrum.read" in scopes
    assert ("atmospec.io", "Spectrum.read") in graph["atmospec.spectrum"]


def test_no_import_cycles_except_spectrum_conveniences(
    graph: dict[str, set[tuple[str, str]]],
) -> None:
    edges = {
        m: {t for t, scope in ts if (m, scope) not in ALLOWED_CYCLE_EDGES}
        for m, ts in graph.items()
    }
    assert _cycles(edges) == []
    # ...and the allowed edges are what closes the one circle there is.
    full = {m: {t for t, _ in ts} for m, ts in graph.items()}
    circles = _cycles(full)
    assert len(circles) <= 1
    for circle in circles:
        assert "atmospec.spectrum" in circle
        assert all(m == "atmospec.spectrum" or m.startswith("atmospec.io") for m in circle)


def test_every_module_has_a_layer() -> None:
    unplaced = [m for m in _modules() if m != "atmospec" and _layer(m) < 0]
    assert unplaced == [], "add these modules to LAYERS in tests/test_architecture.py"


def test_data_flows_one_way(graph: dict[str, set[tuple[str, str]]]) -> None:
    upward = []
    for module, targets in graph.items():
        if module == "atmospec":
            continue  # the top-level facade re-exports from every layer
        for target, scope in targets:
            if (module, scope) in ALLOWED_CYCLE_EDGES:
                continue
            if target == "atmospec" or _layer(target) > _layer(module):
                where = f" (in {scope})" if scope else ""
                upward.append(
                    f"{module} [{LAYERS[_layer(module)][0]}] imports {target}"
                    f" [{LAYERS[_layer(target)][0] if target != 'atmospec' else 'facade'}]{where}"
                )
    assert upward == []


def test_modules_stay_small() -> None:
    sizes = {m: len(p.read_text(encoding="utf-8").splitlines()) for m, p in _modules().items()}
    too_long = {m: n for m, n in sizes.items() if n > MAX_LINES and m not in LONG_MODULES}
    assert too_long == {}
    # an exception that is no longer needed is removed from the list
    assert [m for m in LONG_MODULES if sizes.get(m, 0) <= MAX_LINES] == []


def test_every_exported_name_resolves() -> None:
    # Packages export their names lazily (a ``_WHERE`` map read by ``__getattr__``), so a
    # name whose module moved stays in ``__all__`` and fails only when someone imports it:
    # ``from atmospec.training import Preprocessor`` raised ModuleNotFoundError after the
    # preprocessing moved to atmospec.estimators. Every name of every ``__all__`` resolves.
    import importlib

    broken = []
    for module in sorted(_modules()):
        if module.endswith("__main__"):
            continue
        mod = importlib.import_module(module)
        for name in getattr(mod, "__all__", ()):
            try:
                getattr(mod, name)
            except (AttributeError, ImportError) as err:
                broken.append(f"{module}.{name}: {type(err).__name__}: {err}")
    assert broken == []


def test_inference_package_is_gone() -> None:
    assert not list((SRC / "atmospec" / "inference").glob("*.py"))


def test_library_output_follows_logging() -> None:
    """No ``quiet`` parameter and no backend switch anywhere in the package: progress bars and
    summaries follow the ``atmospec`` logger's level (one switch: ``atmospec --quiet``), and
    figures are ``matplotlib.figure.Figure`` objects, so importing or calling atmospec never
    changes the user's matplotlib backend."""
    quiet_params, backend_calls = [], []
    for module, path in _modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args
                names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
                # the one switch: ``atmospec --quiet`` (cli.main) sets the level (_logging)
                if "quiet" in names and module not in ("atmospec._logging", "atmospec.cli.main"):
                    quiet_params.append(f"{module}.{node.name}")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "use"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id in ("matplotlib", "mpl")
            ):
                backend_calls.append(f"{module}:{node.lineno}")
    assert quiet_params == []
    assert backend_calls == []


def _bool_progress_params(source: str) -> list[str]:
    """Functions of ``source`` with a ``progress`` parameter annotated ``bool``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            for a in (*args.posonlyargs, *args.args, *args.kwonlyargs):
                ann = a.annotation
                if a.arg == "progress" and isinstance(ann, ast.Name) and ann.id == "bool":
                    found.append(node.name)
                elif a.arg == "progress" and isinstance(ann, ast.Constant) and ann.value == "bool":
                    found.append(node.name)
    return found


def test_progress_bars_follow_logging_not_a_flag() -> None:
    """No ``progress: bool`` parameter: a bar shows when ``atmospec._logging.progress_enabled``
    says so (the ``atmospec`` logger at INFO or below, outside ``progress_hidden``)."""
    planted = "def f(x, *, progress: bool = True):\n    pass\n"
    assert _bool_progress_params(planted) == ["f"]  # the check sees one
    found = [
        f"{module}.{name}"
        for module, path in _modules().items()
        for name in _bool_progress_params(path.read_text(encoding="utf-8"))
    ]
    assert found == []
