"""Formatting shared by the docs page's writers (write_docs.py and its docs_*.py sections)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def num(value: Any, spec: str = ".2f") -> str:
    """A number in ``spec``, or a dash where the JSON has none."""
    return "—" if value is None else format(value, spec)


def pct(value: Any) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def span(values: Iterable[float], spec: str = ".2f") -> str:
    """``lo-hi`` of the values (one value alone), or a dash."""
    vals = sorted(values)
    if not vals:
        return "—"
    lo, hi = format(vals[0], spec), format(vals[-1], spec)
    return lo if lo == hi else f"{lo}-{hi}"


def table(headers: list[str], rows: Iterable[Iterable[Any]]) -> list[str]:
    """A Markdown table; ``|`` inside a cell is escaped."""
    def line(cells: Iterable[Any]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"
    return [line(headers), "|" + "---|" * len(headers), *(line(r) for r in rows)]
