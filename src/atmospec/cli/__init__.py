"""The ``atmospec`` command line: a thin Typer layer over the Python API."""
