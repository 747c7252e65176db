"""Training and judging estimators: recipes (a TOML config to a trained, evaluated model)
and the evaluation report."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from atmospec.learning.evaluation import evaluate
    from atmospec.learning.recipe import Recipe, load_recipe, run_recipe

__all__ = ["Recipe", "evaluate", "load_recipe", "run_recipe"]

_WHERE = {
    "Recipe": "recipe",
    "load_recipe": "recipe",
    "run_recipe": "recipe",
    "evaluate": "evaluation",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
