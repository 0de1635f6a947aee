"""Monitoring room: inline SVG charts drawn on the server, the board's sparklines and a link's history panels.

No script and no chart library: a polyline per unbroken run of replies, a tick where a whole step was lost,
a dashed line at the alert threshold. Coordinates only; the templates draw them (and label them in the
reader's language). Times on the x axis, the window ending at `end`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

Point = tuple[dt.datetime, float | None]  # (time, value; None where the step had no reply)


@dataclass
class Series:
    width: float
    height: float
    runs: list[str] = field(default_factory=list)  # polyline "x,y x,y" per run of values
    lost: list[float] = field(default_factory=list)  # x of the steps with no value
    band: str = ""  # polygon points: the spread (min to max) under the line
    bars: list[tuple[float, float, float, float]] = field(default_factory=list)  # (x, y, width, height) per step
    limit_y: float | None = None  # the alert threshold's height, when within the scale
    top: float = 0.0  # the value at the top of the scale


def _x(at: dt.datetime, start: dt.datetime, span: float, width: float) -> float:
    return round((at - start).total_seconds() / span * width, 1)


def _scale(values: Sequence[float], floor: float, limit: float | None) -> float:
    peak = max([*values, floor])
    if limit is not None and limit <= peak * 1.5:
        peak = max(peak, limit)  # show the threshold when the figures come near it
    return peak * 1.1


def series(points: Sequence[Point], *, start: dt.datetime, end: dt.datetime, width: float, height: float,
           floor: float, limit: float | None = None,
           spread: Sequence[tuple[float | None, float | None]] | None = None) -> Series:
    """A line of `points` between start and end; `floor` is the smallest top of scale (so that a quiet link
    is not drawn as a storm), `spread` the (min, max) at each point for the band."""
    span = max((end - start).total_seconds(), 1.0)
    values = [v for _t, v in points if v is not None]
    if spread:
        values += [hi for _lo, hi in spread if hi is not None]
    top = _scale(values, floor, limit)
    out = Series(width=width, height=height, top=top)

    def y(value: float) -> float:
        return round(height - 1 - min(value, top) / top * (height - 2), 1)

    run: list[str] = []
    for at, value in points:
        if at < start:
            continue
        if value is None:
            out.lost.append(_x(at, start, span, width))
            if run:
                out.runs.append(" ".join(run))
                run = []
            continue
        run.append(f"{_x(at, start, span, width)},{y(value)}")
    if run:
        out.runs.append(" ".join(run))
    if spread:
        upper = [f"{_x(at, start, span, width)},{y(hi)}" for (at, _v), (_lo, hi) in zip(points, spread, strict=True)
                 if hi is not None and at >= start]
        lower = [f"{_x(at, start, span, width)},{y(lo)}" for (at, _v), (lo, _hi) in zip(points, spread, strict=True)
                 if lo is not None and at >= start]
        if len(upper) > 1:
            out.band = " ".join(upper + lower[::-1])
    if limit is not None and limit <= top:
        out.limit_y = y(limit)
    return out


def ratio_bars(points: Sequence[Point], *, start: dt.datetime, end: dt.datetime, width: float, height: float,
               step_seconds: float, limit: float | None = None, floor: float = 0.05) -> Series:
    """One bar per step for a ratio (packet loss), scaled from 0 to at least `floor` and at most 100 %."""
    span = max((end - start).total_seconds(), 1.0)
    top = min(_scale([v for _t, v in points if v is not None], floor, limit), 1.0)
    out = Series(width=width, height=height, top=top)
    bar = max(round(step_seconds / span * width, 1) - 0.5, 0.8)
    for at, value in points:
        if at < start or value is None or value <= 0:
            continue
        h = max(round(min(value, top) / top * (height - 2), 1), 1.0)
        out.bars.append((max(_x(at, start, span, width) - bar, 0.0), round(height - 1 - h, 1), bar, h))
    if limit is not None and limit <= top:
        out.limit_y = round(height - 1 - limit / top * (height - 2), 1)
    return out


def floor_time(at: dt.datetime, seconds: float) -> dt.datetime:
    """The window's end on a step boundary: a page polled every few seconds then redraws only once per step."""
    epoch = at.timestamp()
    return dt.datetime.fromtimestamp(epoch - epoch % max(seconds, 1.0), tz=dt.UTC)


def pick(rows: Sequence[Any], value: Callable[[Any], float | None]) -> list[Point]:
    return [(r.measured_at, value(r)) for r in rows]
