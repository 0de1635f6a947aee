"""Reports room: bar charts as coordinates, drawn by the page (inline SVG) and by the PDF alike.

No chart library, as the monitoring room's charts: the geometry is computed here once, in a box of the caller's
size, and each medium only draws rectangles and writes labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class Bar:
    label: str
    value: float
    shown: str  # the value as written beside or above the bar
    x: float
    y: float
    width: float
    height: float
    bad: bool = False  # drawn in the warning colour (a district below target, a lossy link)


@dataclass
class BarChart:
    width: float
    height: float
    horizontal: bool
    bars: list[Bar] = field(default_factory=list)
    top: float = 0.0  # the value at the end of the scale
    label_width: float = 0.0  # horizontal charts: room for the labels on the left

    @property
    def empty(self) -> bool:
        return not self.bars


def _top(values: Sequence[float], floor: float) -> float:
    return max([*values, floor]) or 1.0


def columns(items: Sequence[tuple[str, float, str]], *, width: float, height: float, floor: float = 1.0,
            label_room: float = 16.0) -> BarChart:
    """Vertical bars, one per (label, value, shown) left to right (months along the x axis)."""
    chart = BarChart(width=width, height=height, horizontal=False)
    if not items:
        return chart
    chart.top = _top([v for _l, v, _s in items], floor)
    slot = width / len(items)
    room = height - label_room - 12  # labels below, the value above the tallest bar
    for i, (label, value, shown) in enumerate(items):
        h = round(max(value, 0) / chart.top * room, 1)
        chart.bars.append(Bar(label, value, shown, x=round(i * slot + slot * 0.15, 1), y=round(12 + room - h, 1),
                              width=round(slot * 0.7, 1), height=h))
    return chart


def rows(items: Sequence[tuple[str, float, str, bool]], *, width: float, row_height: float = 18.0,
         label_width: float = 200.0, top: float | None = None) -> BarChart:
    """Horizontal bars, one per (label, value, shown, bad) top to bottom (districts, links)."""
    chart = BarChart(width=width, height=max(len(items), 1) * row_height, horizontal=True, label_width=label_width)
    if not items:
        return chart
    chart.top = top if top is not None else _top([v for _l, v, _s, _b in items], 1e-9)
    room = width - label_width - 60  # the value written after the bar
    for i, (label, value, shown, bad) in enumerate(items):
        w = round(max(min(value, chart.top), 0) / chart.top * room, 1) if chart.top else 0.0
        chart.bars.append(Bar(label, value, shown, x=label_width, y=round(i * row_height + 3, 1), width=w,
                              height=round(row_height - 6, 1), bad=bad))
    return chart
