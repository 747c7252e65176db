"""The tutorials run as written: every code block of every page in docs/tutorials/ is executed.

One test per page. The page's python blocks run in order in one namespace, in a fresh working
folder; its shell blocks (``bash``, ``console`` and unlabelled fences) that call ``atmospec``
run there too, with this checkout's ``atmospec`` on the PATH, each command required to exit 0.
A ``python`` block written as a ``>>>`` session runs example by example, and an example whose
shown output is ``SomeError: ...`` must raise that error.

Markers (HTML comments, invisible in the rendered page, visible in its source):

- ``<!-- skip-ci: REASON -->`` on the line(s) before a block: the block is not run (only for
  blocks that cannot run in CI, e.g. hours of training); the reason is required.
- ``<!-- needs-shared-data -->`` anywhere in a page: the page uses the optional real test
  files (``atmospec.data.shared_data()``) and is skipped, with that reason, when they are absent.

``text`` blocks and other languages are output or file listings and are never run.
"""

from __future__ import annotations

import doctest
import glob
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs" / "tutorials").glob("*.md"))
SHELL_LANGS = {"bash", "sh", "shell", "console", ""}
PYTHON_LANGS = {"python", "py", "pycon"}
SKIP = re.compile(r"<!--\s*skip-ci:(.*?)-->")
NEEDS_SHARED = "<!-- needs-shared-data -->"
ERROR_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Warning))\s*:")


@dataclass
class Block:
    """One fenced code block of a page."""

    lang: str
    code: str
    line: int  # line number of the opening fence (1-based)
    skip: str | None  # reason of a skip-ci marker, None when the block runs


def parse(text: str) -> list[Block]:
    """The fenced blocks of a markdown page, with the skip-ci reason that precedes each."""
    lines = text.splitlines()
    blocks: list[Block] = []
    pending: str | None = None
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        marker = SKIP.search(stripped)
        if marker:
            pending = marker.group(1).strip()
            if not pending:
                raise ValueError(f"line {i + 1}: a skip-ci marker needs a reason")
        elif stripped.startswith("```"):
            fence = stripped[: len(stripped) - len(stripped.lstrip("`"))]
            lang = stripped[len(fence) :].strip().split(" ")[0].lower()
            start = i
            body = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith(fence):
                body.append(lines[i])
                i += 1
            if i == len(lines):
                raise ValueError(f"line {start + 1}: unclosed code fence")
            blocks.append(Block(lang, "\n".join(body) + "\n", start + 1, pending))
            pending = None
        elif stripped:
            pending = None  # a marker applies only to the block right after it
        i += 1
    return blocks


def shell_commands(block: Block) -> list[str]:
    """The commands of a shell block: ``$ `` lines of a console block (the rest is output),
    every non-comment line of the others, with backslash continuations joined."""
    out: list[str] = []
    console = block.lang == "console"
    current = ""
    for ln in block.code.splitlines():
        if not current:
            if console:
                if not ln.startswith("$ "):
                    continue  # output
                ln = ln[2:]
            if not ln.strip() or ln.lstrip().startswith("#"):
                continue
        current += ln.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        out.append(current.strip())
        current = ""
    return out


def runs(block: Block) -> bool:
    """Whether the harness executes this block (python, or a shell block calling atmospec)."""
    if block.lang in PYTHON_LANGS:
        return True
    if block.lang in SHELL_LANGS:
        return any(shlex.split(c, comments=True)[:1] == ["atmospec"] for c in shell_commands(block))
    return False


def _run_python(block: Block, namespace: dict, where: str) -> None:
    if ">>>" not in block.code:
        exec(compile(block.code, where, "exec"), namespace)
        return
    for example in doctest.DocTestParser().get_examples(block.code):
        code = compile(example.source, f"{where} (+{example.lineno})", "single")
        expected = ERROR_LINE.match(example.want.strip())
        if expected is None:
            exec(code, namespace)
            continue
        try:
            exec(code, namespace)
        except Exception as err:  # noqa: BLE001 - the page says which error to expect
            names = {c.__name__ for c in type(err).__mro__}
            assert expected.group(1).rsplit(".", 1)[-1] in names, (
                f"{where} (+{example.lineno}): expected {expected.group(1)}, got {err!r}"
            )
        else:
            raise AssertionError(f"{where} (+{example.lineno}): expected {expected.group(1)}")


def _run_cli(argv: list[str], where: str) -> None:
    """``atmospec ARGV`` in this process (no interpreter start-up; models stay cached)."""
    from atmospec.cli.main import main

    saved = sys.argv
    sys.argv = ["atmospec", *argv]
    try:
        main()
    except SystemExit as stop:
        code = stop.code
    else:  # pragma: no cover - typer always exits
        code = 0
    finally:
        sys.argv = saved
    assert code in (0, None), f"{where}: `atmospec {shlex.join(argv)}` exited {code}"
    _check_no_failed_inputs(argv, where)


def _check_no_failed_inputs(argv: list[str], where: str) -> None:
    """A prediction command whose run folder lists unusable inputs fails the page: the batch
    engine records them in ``failures.csv`` and may still exit 0, so a tutorial command that
    predicts nothing would otherwise pass."""
    if "predict" not in argv[:2]:
        return
    out = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a in ("--out", "-o")), None)
    failures = Path(out) / "failures.csv" if out else None
    if failures is None or not failures.is_file():
        return
    lines = [ln for ln in failures.read_text().splitlines()[1:] if ln.strip()]
    assert not lines, f"{where}: `atmospec {shlex.join(argv)}` could not use: {lines[:3]}"


def _run_shell(block: Block, cwd: Path, bindir: Path, where: str) -> None:
    """Each command of the block: plain ``atmospec ...`` calls in-process (globs expanded),
    anything else (pipes, redirections, other programs) through ``sh``."""
    env = dict(os.environ)
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    env["MPLBACKEND"] = "Agg"
    for cmd in shell_commands(block):
        argv = shlex.split(cmd, comments=True)
        if argv[:1] == ["atmospec"] and not any(c in cmd.split("#")[0] for c in "|&;<>$`"):
            args: list[str] = []
            for arg in argv[1:]:
                matches = sorted(glob.glob(arg)) if any(c in arg for c in "*?[") else []
                args.extend(matches or [arg])
            _run_cli(args, where)
            continue
        proc = subprocess.run(
            cmd, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=600
        )
        assert proc.returncode == 0, (
            f"{where}: `{cmd}` exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )


def _atmospec_bin(tmp: Path) -> Path:
    """A folder holding an ``atmospec`` executable that runs this checkout's CLI."""
    bindir = tmp / "bin"
    bindir.mkdir()
    exe = bindir / "atmospec"
    exe.write_text(f"#!{sys.executable}\nfrom atmospec.cli.main import main\n\nmain()\n")
    exe.chmod(0o755)
    return bindir


@pytest.mark.slow  # seconds to a few minutes per page; CI runs it (make test selects all)
@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_tutorial_runs(page: Path, tmp_path: Path, monkeypatch) -> None:
    text = page.read_text()
    blocks = parse(text)
    if NEEDS_SHARED in text:
        from atmospec.data import shared_data

        if shared_data() is None:
            pytest.skip(f"{page.name} uses the optional real test files (shared/data), absent here")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    bindir = _atmospec_bin(tmp_path)
    namespace: dict = {"__name__": "__main__"}
    ran = 0
    try:
        for block in blocks:
            if block.skip is not None or not runs(block):
                continue
            where = f"{page.relative_to(ROOT)}:{block.line}"
            if block.lang in PYTHON_LANGS:
                _run_python(block, namespace, where)
            else:
                _run_shell(block, work, bindir, where)
            ran += 1
    finally:
        import matplotlib.pyplot as plt

        plt.close("all")
    assert ran > 0, f"{page.name}: no block ran"


def test_every_page_has_code_and_every_skip_a_reason() -> None:
    for page in PAGES:
        blocks = parse(page.read_text())  # raises on a skip-ci marker without a reason
        assert any(runs(b) for b in blocks), page.name


def test_parser_reads_markers_sessions_and_console_blocks() -> None:
    page = (
        "text\n<!-- skip-ci: trains for hours -->\n\n```python\ntrain()\n```\n"
        'between\n```console\n$ atmospec grids \\\n  --json\n{"x": 1}\n```\n'
        "```text\nError: shown output\n```\n```python\n>>> 1 / 0\nZeroDivisionError: x\n```\n"
    )
    blocks = parse(page)
    assert [b.lang for b in blocks] == ["python", "console", "text", "python"]
    assert blocks[0].skip == "trains for hours" and blocks[1].skip is None
    assert shell_commands(blocks[1]) == ["atmospec grids    --json"]
    assert [runs(b) for b in blocks] == [True, True, False, True]
    _run_python(blocks[3], {}, "page")  # the expected ZeroDivisionError is raised: passes
    with pytest.raises(AssertionError, match="expected ValueError"):
        _run_python(Block("python", ">>> 1\nValueError: no\n", 1, None), {}, "page")
    with pytest.raises(ValueError, match="needs a reason"):
        parse("<!-- skip-ci: -->\n```python\nx\n```\n")


def test_a_prediction_with_unusable_inputs_fails_the_page(tmp_path, monkeypatch) -> None:
    """The blind spot of exit codes: a run folder's failures.csv with rows fails the block."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "failures.csv").write_text(
        "row,source,error\n0,bad.fits,FileFormatError: bad.fits: not FITS\n"
    )
    with pytest.raises(AssertionError, match="could not use.*bad.fits"):
        _check_no_failed_inputs(["predict", "bad.fits", "--out", "run"], "page")
    (tmp_path / "run" / "failures.csv").write_text("row,source,error\n")
    _check_no_failed_inputs(["predict", "bad.fits", "--out", "run"], "page")  # none: passes
    _check_no_failed_inputs(["scale", "predict", "s.zarr", "-o", "absent"], "page")  # no folder
