"""Fuzzing in the test suite: a brief run of benchmarks/fuzz.py and hypothesis properties.

The long run (>= 10,000 cases) is ``python benchmarks/fuzz.py``; here a few hundred cases
keep every reader honest on each change: only atmospec errors, never a traceback, never
NaN in what a reader returns or a command writes.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from atmospec.errors import AtmospecError, InvalidSpectrumError
from atmospec.io._common import ERROR_NAMES, FLUX_NAMES, WAVE_NAMES, find_column, normalise_column
from atmospec.sanity import check_arrays

HARNESS = Path(__file__).parents[1] / "benchmarks" / "fuzz.py"


def _harness():
    spec = importlib.util.spec_from_file_location("atmospec_fuzz_harness", HARNESS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.realdata
def test_brief_fuzz_run_has_no_traceback_and_no_nan_leak(splat_dir, tmp_path) -> None:
    fuzz = _harness()
    slow = ("cli predict", "transit", "load_estimator", "highres read_hpf (Goldilocks)")
    summary = fuzz.run(200, seed=11, work=tmp_path, quiet=True, exclude=slow)
    assert summary["cases"] == 200
    assert summary["tracebacks"] == 0, summary["failures"]
    assert summary["nan_leaks"] == 0, summary["failures"]
    # the mutations reach the readers' success paths too, not only their first check
    assert summary["ok"] >= 25 and summary["refused"] >= 80


def test_mutators_change_the_input() -> None:
    fuzz = _harness()
    rng = np.random.default_rng(0)
    seed = b"# wavelength [um] flux error\n" + b"".join(
        f"{1 + i / 10:.1f} {2 + i / 10:.1f} 0.1\n".encode() for i in range(20)
    )
    outs = [fuzz.mutate_text(seed, rng) for _ in range(50)]
    outs += [fuzz.mutate_bytes(seed, rng) for _ in range(50)]
    # a shuffle may by chance keep the order; nearly every case must differ from the seed
    assert sum(o != seed for o in outs) >= 90 and len(set(outs)) >= 80


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.binary(max_size=3000),
    name=st.sampled_from(["s.fits", "s.fits.gz", "s.txt", "s.csv", "s.ecsv", "s_fluxcal.dat"]),
)
def test_random_bytes_give_atmospec_errors_only(tmp_path_factory, data: bytes, name: str) -> None:
    from atmospec.io import read

    path = tmp_path_factory.mktemp("bytes") / name
    path.write_bytes(data)
    try:
        read(path)
    except AtmospecError:
        pass


_EDGE = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e308, -1e308, 5e-324, 1e-300, 1e300]),
)


@settings(max_examples=150, deadline=None)
@given(
    flux=st.lists(_EDGE, min_size=1, max_size=40),
    unc=st.lists(
        st.one_of(st.floats(min_value=0), st.sampled_from([np.nan, np.inf])),
        min_size=40,
        max_size=40,
    ),
)
# found by this test: each value inside the gates' range, their ratio squared is not
@example(flux=[1.45e65, 1.0e65], unc=[1.08e-89] * 40)
def test_accepted_arrays_have_finite_chi2_terms(flux: list[float], unc: list[float]) -> None:
    """Whatever the gates accept, (flux / sigma)^2 and flux^2 stay finite in float64."""
    f = np.array(flux)
    u = np.array(unc[: f.size])
    try:
        check_arrays(f, u, source="x")
    except InvalidSpectrumError:
        return
    ok = np.isfinite(f) & np.isfinite(u) & (u > 0)
    assert np.isfinite((f[ok] / u[ok]) ** 2).all() and np.isfinite(f[np.isfinite(f)] ** 2).all()
    assert np.median(f[np.isfinite(f)]) >= 0


_NAMES = st.lists(
    st.one_of(
        st.sampled_from(WAVE_NAMES + FLUX_NAMES + ERROR_NAMES + ("snr", "signal_to_noise", "[/b]")),
        st.text(alphabet="abcdefghijklmnopqrstuvwxyzERS_[]()/ ", min_size=1, max_size=12),
    ),
    min_size=1,
    max_size=6,
    unique=True,
)


@settings(max_examples=150, deadline=None)
@given(names=_NAMES)
def test_error_column_is_an_exact_synonym_or_refused(names: list[str]) -> None:
    try:
        col = find_column(names, ERROR_NAMES, what="uncertainty", source="x", required=False)
    except AtmospecError as err:
        assert "columns could be the uncertainty" in str(err)
        assert sum(normalise_column(n) in ERROR_NAMES for n in names) > 1
        return
    if col is not None:
        assert normalise_column(col) in ERROR_NAMES
    else:
        assert not any(normalise_column(n) in ERROR_NAMES for n in names)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(values=st.lists(st.tuples(_EDGE, _EDGE, _EDGE), min_size=1, max_size=30))
@example(values=[(1.0, 0.0, 0.0), (2.0, 0.0, 0.0)])
def test_text_tables_of_edge_numbers(tmp_path_factory, values) -> None:
    """A reader returns a spectrum without NaN where unmasked, or an atmospec error."""
    from atmospec.io import read_text

    rows = "\n".join(" ".join(repr(v) for v in row) for row in values)
    path = tmp_path_factory.mktemp("edge") / "s.txt"
    path.write_text(f"# wavelength [um] flux [Jy] error [Jy]\n{rows}\n")
    try:
        spec = read_text(path, invalid="mask")
    except AtmospecError:
        return
    use = ~spec.mask
    assert np.isfinite(spec.wavelength).all() and np.isfinite(spec.flux[use]).all()
    if spec.uncertainty is None:
        # no usable error at all (every one zero or negative): read as no errors and said
        # so, for --assume-snr or a refusal to name (hypothesis found [(1, 0, 0), (2, 0, 0)])
        assert "uncertainties are zero, negative or missing" in spec.meta["errors_unusable"]
    else:
        assert (spec.uncertainty[use] > 0).all()


# ------------------------------------------------ regressions: cases the fuzzer found
def _expect_format_error(call, path: Path, match: str) -> None:
    from atmospec.errors import FileFormatError

    with pytest.raises(FileFormatError, match=match):
        call(path)


def test_truncated_hpf_stack_is_a_format_error(shared_dir: Path, tmp_path: Path) -> None:
    """The real WASP-69 HPF stack cut mid-table raised TypeError 'buffer is too small'."""
    from atmospec.highres.io import read_hpf

    raw = (shared_dir / "hpf" / "WASP_69_hpf_stack.fits").read_bytes()
    cut = tmp_path / "stack.fits"
    cut.write_bytes(raw[: len(raw) // 2])
    _expect_format_error(read_hpf, cut, "stack.fits: not a readable FITS file")
    one = tmp_path / "primary-only.fits"
    one.write_bytes(raw[:2880])  # the primary header alone: used to raise IndexError
    _expect_format_error(read_hpf, one, "neither a Goldilocks file")


def test_transmission_row_with_too_few_columns(shared_dir: Path, tmp_path: Path) -> None:
    """A @DATA row of the real WASP-39b file cut to 2 columns raised IndexError."""
    from atmospec.molecules.io import read_transmission

    lines = (shared_dir / "transmission" / "wasp39b_jwst_transit.dat").read_text().splitlines()
    i = next(k for k, line in enumerate(lines) if line.strip().upper().startswith("@DATA")) + 1
    while not lines[i].strip() or lines[i].lstrip().startswith("#"):
        i += 1
    lines[i] = " ".join(lines[i].split()[:2])
    bad = tmp_path / "w39.dat"
    bad.write_text("\n".join(lines) + "\n")
    _expect_format_error(read_transmission, bad, r"line \d+: .*\(2 columns\)")


def test_config_and_table_readers_refuse_bad_values(tmp_path: Path) -> None:
    from atmospec._fileio import read_toml
    from atmospec.molecules.cia import read_cia
    from atmospec.posteriors.pipeline import read_config

    toml = tmp_path / "c.toml"
    toml.write_bytes(b"[npe]\nn_train = \x96\n")
    _expect_format_error(read_toml, toml, "not UTF-8")
    toml.write_text("[npe]\nn_train = inf\n")
    _expect_format_error(read_config, toml, r"n_train = inf is not a valid int")
    cia = tmp_path / "cia.dat"
    cia.write_text("@SPECIES\nH2 H2\n@TEMPERATURES\n100 200\n@DATA\n1.0 2.0 3.0\n2.0 1,5 3.0\n")
    _expect_format_error(read_cia, cia, "not a row of numbers")


def test_x1d_whose_extract1d_is_an_image(tmp_path: Path) -> None:
    from astropy.io import fits

    from atmospec.io import read_jwst_x1d

    path = tmp_path / "x1d.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.ones(5), name="EXTRACT1D")]).writeto(path)
    _expect_format_error(read_jwst_x1d, path, "not a binary table")
