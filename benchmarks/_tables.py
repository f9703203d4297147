"""Tables printed to the terminal and written as reStructuredText (the same rows for both)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

__all__ = ["Table", "fmt"]

_NUMBER = re.compile(r"^-?[\d,.]+(x| / [\d,]+| \(\d+\))?$")


def fmt(value: float | int | None, digits: int = 2) -> str:
    """A number for a table cell: fixed decimals, thousands separators, "n/a" for missing/NaN.

    :param value: the number.
    :param digits: decimals.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


@dataclass
class Table:
    """A titled table of strings.

    :param title: caption.
    :param headers: column headers.
    :param rows: cells, one list per row.
    :param notes: sentences printed under the table.
    """

    title: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: str) -> None:
        """Append a row.

        :param cells: one string per column.
        """
        self.rows.append(list(cells))

    def text(self) -> str:
        """Aligned plain text for the terminal."""
        widths = [max(len(r[i]) for r in [self.headers, *self.rows]) for i in range(len(self.headers))]

        def line(cells: list[str]) -> str:
            padded = (c.rjust(w) if _NUMBER.match(c) else c.ljust(w) for c, w in zip(cells, widths, strict=True))
            return "  ".join(padded).rstrip()

        out = [self.title, "=" * len(self.title), line(self.headers), line(["-" * w for w in widths])]
        out += [line(r) for r in self.rows]
        out += [f"  {n}" for n in self.notes]
        return "\n".join(out)

    def rst(self) -> str:
        """A ``list-table`` directive."""
        out = [f".. list-table:: {self.title}", "   :header-rows: 1", ""]
        for row in [self.headers, *self.rows]:
            out.append("   * - " + _cell(row[0]))
            out += [f"     - {_cell(c)}" for c in row[1:]]
        out.append("")
        out += [f"{n}\n" for n in self.notes]
        return "\n".join(out)


def _cell(text: str) -> str:
    # An empty cell needs a placeholder; "*" and "|" would start markup.
    return (text or "-").replace("*", "\\*").replace("|", "\\|")
