"""Splitting labelled objects into a calibration half and a held-out half."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["stratified_split"]


def stratified_split(
    names: Sequence[str], labels: Sequence[float], seed: int
) -> tuple[list[str], list[str]]:
    """Split objects into a calibration half and a held-out half, stratified in ``labels``:
    sorted by label, each consecutive pair gives one object to each half (which one by the
    seeded generator); an odd last object is held out.

    Example:
        >>> fit, held = stratified_split(list("abcde"), [1, 2, 3, 4, 5], seed=0)
        >>> len(fit), len(held), sorted(fit + held) == list("abcde")
        (2, 3, True)
    """
    rng = np.random.default_rng(seed)
    order = np.argsort(np.asarray(labels, dtype=np.float64), kind="stable")
    fit: list[str] = []
    held: list[str] = []
    for k in range(0, len(order), 2):
        pair = [str(names[i]) for i in order[k : k + 2]]
        if len(pair) == 1:
            held.append(pair[0])
            continue
        pick = int(rng.integers(0, 2))
        fit.append(pair[pick])
        held.append(pair[1 - pick])
    return fit, held
