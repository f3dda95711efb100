"""The compiled path's answer objects: one dict per row of columns, keys in the selection's order.

A dict display (`{k0: a, k1: b}`) builds a dict two to three times faster than `dict(zip(keys, row))`, which
makes an iterator and a tuple per object; a whole job's answer builds tens of thousands of them. The displays
are written out below for the key counts selections mostly have (no code is generated); wider selections take
`dict(zip)`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from itertools import repeat
from typing import Any

Objects = Callable[[Sequence[str], Iterable[tuple[Any, ...]]], list[dict[str, Any]]]


def _one(keys: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> list[dict[str, Any]]:
    (k0,) = keys
    return [{k0: a} for (a,) in rows]


def _two(keys: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> list[dict[str, Any]]:
    k0, k1 = keys
    return [{k0: a, k1: b} for a, b in rows]


def _three(keys: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> list[dict[str, Any]]:
    k0, k1, k2 = keys
    return [{k0: a, k1: b, k2: c} for a, b, c in rows]


def _four(keys: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> list[dict[str, Any]]:
    k0, k1, k2, k3 = keys
    return [{k0: a, k1: b, k2: c, k3: d} for a, b, c, d in rows]


def _five(keys: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> list[dict[str, Any]]:
    k0, k1, k2, k3, k4 = keys
    return [{k0: a, k1: b, k2: c, k3: d, k4: e} for a, b, c, d, e in rows]


def _six(keys: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> list[dict[str, Any]]:
    k0, k1, k2, k3, k4, k5 = keys
    return [{k0: a, k1: b, k2: c, k3: d, k4: e, k5: f} for a, b, c, d, e, f in rows]


def _seven(keys: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> list[dict[str, Any]]:
    k0, k1, k2, k3, k4, k5, k6 = keys
    return [{k0: a, k1: b, k2: c, k3: d, k4: e, k5: f, k6: g} for a, b, c, d, e, f, g in rows]


def _eight(keys: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> list[dict[str, Any]]:
    k0, k1, k2, k3, k4, k5, k6, k7 = keys
    return [{k0: a, k1: b, k2: c, k3: d, k4: e, k5: f, k6: g, k7: h} for a, b, c, d, e, f, g, h in rows]


def _zipped(keys: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> list[dict[str, Any]]:
    return list(map(dict, map(zip, repeat(keys), rows)))


_DISPLAYS: dict[int, Objects] = {1: _one, 2: _two, 3: _three, 4: _four, 5: _five, 6: _six, 7: _seven, 8: _eight}


def objects(keys: Sequence[str], columns: Sequence[Iterable[Any]]) -> list[dict[str, Any]]:
    """One dict per row of `columns`, with `keys` in this order (`columns` of equal lengths, one per key)."""
    return _DISPLAYS.get(len(keys), _zipped)(keys, zip(*columns, strict=True))
