"""Options every command spells the same way."""

from __future__ import annotations

import typer

from atmospec.cli.main import app


def _commands(group, prefix=""):
    for name, cmd in getattr(group, "commands", {}).items():
        yield f"{prefix}{name}", cmd
        yield from _commands(cmd, f"{prefix}{name} ")


def test_every_out_option_also_answers_to_dash_o():
    # `atmospec molecules F -o D` once read -o as a spectrum file, because that command alone
    # spelled its output folder --out only. Every command with --out takes -o too.
    missing = []
    n = 0
    for name, cmd in _commands(typer.main.get_command(app)):
        for p in getattr(cmd, "params", []):
            if "--out" in getattr(p, "opts", []):
                n += 1
                if "-o" not in p.opts:
                    missing.append(name)
    assert n >= 20, f"only {n} commands with --out found: the walk over commands broke"
    assert not missing, f"--out without -o: {missing}"


def test_every_command_summary_is_one_line():
    # The command lists of `atmospec --help` print a docstring's first paragraph with its
    # line breaks as written: a summary wrapped over several source lines showed up as
    # ragged lines ("... set them beside" / "chi-square fits ..."). Each summary is one line.
    import inspect

    ragged = []
    n = 0
    for name, cmd in _commands(typer.main.get_command(app)):
        if getattr(cmd, "commands", None) or cmd.callback is None:
            continue
        n += 1
        doc = inspect.getdoc(cmd.callback) or ""
        if "\n" in doc.split("\n\n")[0]:
            ragged.append(name)
    assert n >= 30, f"only {n} commands found: the walk over commands broke"
    assert not ragged, f"summaries over several lines: {ragged}"


def test_command_help_paragraphs_flow_as_one_text():
    # The help renderer keeps a docstring's line breaks inside every paragraph after the
    # first, so `atmospec predict --help` in an 80-column terminal broke its sentences twice
    # ("An interrupted run resumes where it" / "stopped" / "when rerun ..."). In a terminal
    # wide enough for a whole paragraph, each sentence now reads on one line.
    from typer.testing import CliRunner

    res = CliRunner().invoke(app, ["predict", "--help"], terminal_width=400, env={"COLUMNS": "400"})
    assert res.exit_code == 0
    assert "An interrupted run resumes where it stopped when rerun with the same --out" in (
        res.output
    )
    # a blank line between paragraphs still separates them
    lines = [line.strip() for line in res.output.splitlines()]
    i = next(i for i, line in enumerate(lines) if line.startswith("Exit status: 0 all spectra"))
    assert lines[i - 1] == ""


def test_every_seed_option_takes_only_what_numpy_and_torch_take():
    # `posterior sample --seed -1` ended in numpy's "expected non-negative integer" traceback
    # and a seed above 2**63 in torch's "Overflow when unpacking long long". Every --seed is
    # an integer in [0, 2**32 - 1], checked while the command line is parsed.
    from atmospec.cli._checks import SEED_MAX

    seen, loose = [], []
    for name, cmd in _commands(typer.main.get_command(app)):
        for p in getattr(cmd, "params", []):
            if "--seed" in getattr(p, "opts", []):
                seen.append(name)
                if (getattr(p, "min", None), getattr(p, "max", None)) != (0, SEED_MAX):
                    loose.append(name)
    assert len(seen) >= 11 and {"fit", "posterior sample"} <= set(seen), f"walk broke: {seen}"
    assert not loose, f"--seed without the range: {loose}"


def test_meaningless_numbers_are_usage_errors_before_anything_is_read(tmp_path):
    # Each of these ended in a ValueError, IndexError or OverflowError traceback from deep
    # inside (fit --distance-pc 0, --sys-floor nan, --nlive 0; posterior sample --n 0) or was
    # taken silently (report --max-objects -1 dropped the last object's figure; predict
    # --show -1, --threads 0; --snr-min nan selected nothing). Now exit status 2, naming the
    # option, before the (here missing) file is read or the output folder made.
    from typer.testing import CliRunner

    out = tmp_path / "out"
    cases = {
        ("fit", "x.csv", "-g", "dback24"): {
            "--distance-pc": ["0", "-3", "nan", "inf"],
            "--sys-floor": ["-0.1", "nan", "1e308"],
            "--nlive": ["0", "-1"],
            "--seed": ["-1"],
            "--top": ["-1"],
            "--assume-snr": ["0", "nan"],
        },
        ("posterior", "sample", "x.csv"): {
            "--n": ["0", "-5", "99999999999999999999"],
            "--seed": ["-1", str(2**64)],
            "--assume-snr": ["-1"],
        },
        ("predict", "x.csv"): {
            "--threads": ["0"],
            "--show": ["-1"],
            "--max-plots": ["-1"],
            "--snr-min": ["nan", "-inf"],
            "--limit": ["0"],
            "--workers": ["0"],
            "--seed": ["-1"],
        },
        ("library",): {"--snr-min": ["nan"], "--limit": ["0"]},
        ("report", "x"): {"--max-objects": ["-1"]},
    }
    n = 0
    for command, options in cases.items():
        for opt, values in options.items():
            for value in values:
                args = [*command, opt, value]
                if command[0] != "library":
                    args += ["-o" if command[0] != "report" else "--out", str(out)]
                res = CliRunner(env={"COLUMNS": "200"}).invoke(app, args)
                said = " ".join(res.output.split())
                assert res.exit_code == 2, (args, res.output)
                assert f"Invalid value for '{opt}'" in said or opt in said, (args, said)
                assert not out.exists(), args
                n += 1
    assert n == 30
