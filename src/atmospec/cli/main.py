"""The ``atmospec`` Typer application; each command group lives in its own module."""

from __future__ import annotations

import importlib
import inspect

import typer

__all__ = ["app", "main"]

app = typer.Typer(
    name="atmospec",
    help="Physics from spectra: learned estimators checked against classic fits.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# One module per command group; each defines ``register(app)``.
_GROUPS = (
    "data",
    "library",
    "grids",
    "fit",
    "discrepancy",
    "demo",
    "learning",
    "predict",
    "posteriors",
    "report",
    "stats",
    "molecules",
    "transit",
    "highres",
    "scale",
)


def _register_all() -> None:
    for name in _GROUPS:
        module_name = f"atmospec.cli.{name}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name == module_name:  # this group is not part of this build
                continue
            raise
        module.register(app)


def reflow(text: str) -> str:
    """A command's help with each paragraph on one line, for the terminal to wrap.

    Docstrings are wrapped at the source's line length; the help renderer keeps those line
    breaks inside every paragraph after the first, so in a terminal narrower than the source
    a sentence broke twice. Paragraphs (blank-line separated) stay apart; a paragraph that
    starts with ``\\b`` keeps its lines, as click means it; anything after ``\\f`` is not help.
    The docs' literal quotes (two backticks) become one, as the other help text writes them.

    Example:
        >>> reflow("First line.\\n\\nA sentence wrapped\\nat the ``source``.\\n\\nNext.")
        'First line.\\n\\nA sentence wrapped at the `source`.\\n\\nNext.'
    """
    head, sep, tail = inspect.cleandoc(text).replace("``", "`").partition("\f")
    paragraphs = [
        p if p.startswith("\b") else " ".join(line.strip() for line in p.splitlines())
        for p in head.split("\n\n")
    ]
    return "\n\n".join(paragraphs) + sep + tail


def _reflow_helps(group: typer.Typer) -> None:
    """Set every command's help (its docstring when none is given) to :func:`reflow`'s."""
    for info in group.registered_commands:
        doc = info.help if info.help is not None else inspect.getdoc(info.callback)
        if doc:
            info.help = reflow(doc)
    for sub in group.registered_groups:
        if sub.typer_instance is not None:
            _reflow_helps(sub.typer_instance)


_register_all()
_reflow_helps(app)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Also show debug messages."),
    quiet: bool = typer.Option(
        False,
        "--quiet",
        "-q",
        help="Only warnings and errors: no progress bars and no printed summaries or tables "
        "(the answers are in the output files: `fit --out`, `predict --out`; --json still "
        "prints).",
    ),
) -> None:
    from atmospec._logging import configure

    configure(verbose=verbose, quiet=quiet)
    if version:
        from atmospec import __version__

        typer.echo(__version__)
        raise typer.Exit()


def main() -> None:
    """Console entry point: run the app, turning atmospec errors into clear one-line messages."""
    from atmospec.errors import AtmospecError

    try:
        app()
    except AtmospecError as err:
        from rich.console import Console
        from rich.markup import escape

        # escaped: user text (file names, column names like "[/b]", hints like "[um]") and
        # messages with brackets (pip install 'atmospec[scale]', array shapes) are not markup
        Console(stderr=True).print(
            f"[bold red]error:[/] {escape(str(err))}", highlight=False, soft_wrap=True
        )
        raise SystemExit(2) from None
