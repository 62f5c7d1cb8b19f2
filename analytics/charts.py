"""Server-rendered SVG charts for the report pages: bar, line, heatmap and histogram.

Each builder returns one ``<figure>``: an SVG with ``role="img"``, a ``<title>`` and a
``<desc>`` it is labelled by, and a data table in a disclosure, so the chart needs no
script and a screen reader (or a printout) gets the numbers. Colour is never the only
signal: bars and cells carry their value as text, line series differ by dash and marker.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape as _escape

from django.utils.safestring import SafeString, mark_safe

Number = float | int | None
Formatter = Callable[[Number], str]

_ids = itertools.count(1)
WIDTH = 640
HEIGHT = 240
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 56, 16, 16, 40
# Series styles: (css class, dash pattern, marker shape) so print and colour-blind readers can tell them apart.
SERIES_STYLES = (("s1", "", "circle"), ("s2", "6 4", "square"), ("s3", "2 3", "triangle"),
                 ("s4", "10 3 2 3", "diamond"), ("s5", "1 2", "square"))


def escape(text: object) -> str:
    # The standard library's escape: Django's lazy-aware one costs several times more per call,
    # and a cohort heatmap makes thousands of calls.
    return _escape(str(text), quote=True)


def plain(value: Number) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[Number]


def _chart_id(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}"


def _nice_max(top: float) -> float:
    if top <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(top))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        if top <= step * magnitude:
            return float(step * magnitude)
    return float(10 * magnitude)


def _table(caption: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in header)
    body = "".join(
        "<tr>" + f'<th scope="row">{escape(row[0])}</th>' + "".join(f"<td>{escape(c)}</td>" for c in row[1:]) + "</tr>"
        for row in rows
    )
    return (f'<details class="chart-data"><summary>Show the data as a table</summary>'
            f'<div class="table-wrap"><table class="data-table"><caption>{escape(caption)}</caption>'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div></details>")


def _figure(cid: str, title: str, desc: str, svg_body: str, width: int, height: int, table: str,
            extra_class: str = "") -> SafeString:
    size = f' width="{width}" height="{height}"' if extra_class == "heatmap" else ""
    svg = (f'<svg class="chart {extra_class}" viewBox="0 0 {width} {height}"{size} role="img" '
           f'aria-labelledby="{cid}-t {cid}-d" preserveAspectRatio="xMinYMin meet" '
           f'xmlns="http://www.w3.org/2000/svg">'
           f'<title id="{cid}-t">{escape(title)}</title><desc id="{cid}-d">{escape(desc)}</desc>{svg_body}</svg>')
    return mark_safe(  # noqa: S308 - every interpolated text above went through escape()
        f'<figure class="chart-figure" id="{cid}"><figcaption>{escape(title)}</figcaption>'
        f'<div class="chart-scroll">{svg}</div>{table}</figure>'
    )


def _axis(ymax: float, fmt: Formatter, plot_h: float) -> str:
    parts = []
    for i in range(5):
        v = ymax * i / 4
        y = PAD_TOP + plot_h - plot_h * i / 4
        parts.append(f'<line class="grid" x1="{PAD_LEFT}" x2="{WIDTH - PAD_RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
                     f'<text class="tick" x="{PAD_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
                     f"{escape(fmt(v))}</text>")
    return "".join(parts)


def _x_labels(labels: Sequence[str], xs: Sequence[float]) -> str:
    # Thin out labels so they never overlap: at most ~12 on the axis.
    every = max(1, -(-len(labels) // 12))
    return "".join(
        f'<text class="tick" x="{x:.1f}" y="{HEIGHT - PAD_BOTTOM + 16}" text-anchor="middle">{escape(lbl)}</text>'
        for i, (lbl, x) in enumerate(zip(labels, xs, strict=True)) if i % every == 0
    )


def bar_chart(*, title: str, labels: Sequence[str], values: Sequence[Number], value_name: str,
              fmt: Formatter = plain, desc: str = "", label_name: str = "") -> SafeString:
    """Vertical bars with their value printed above each bar (when there is room)."""
    cid = _chart_id("bar")
    nums = [float(v) for v in values if v is not None]
    ymax = _nice_max(max(nums, default=0.0))
    plot_w = WIDTH - PAD_LEFT - PAD_RIGHT
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    n = max(1, len(labels))
    slot = plot_w / n
    bar_w = max(2.0, slot * 0.7)
    parts = [_axis(ymax, fmt, plot_h)]
    xs = []
    for i, value in enumerate(values):
        x = PAD_LEFT + slot * i + (slot - bar_w) / 2
        xs.append(x + bar_w / 2)
        if value is None:
            continue
        h = plot_h * float(value) / ymax if ymax else 0
        y = PAD_TOP + plot_h - h
        parts.append(f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}">'
                     f"<title>{escape(labels[i])}: {escape(fmt(value))}</title></rect>")
        if n <= 16:
            parts.append(f'<text class="bar-value" x="{x + bar_w / 2:.1f}" y="{y - 4:.1f}" '
                         f'text-anchor="middle">{escape(fmt(value))}</text>')
    parts.append(_x_labels(labels, xs))
    table = _table(title, [label_name or "Label", value_name],
                   [[lbl, fmt(v)] for lbl, v in zip(labels, values, strict=True)])
    return _figure(cid, title, desc or f"Bar chart of {value_name} by {label_name or 'label'}.",
                   "".join(parts), WIDTH, HEIGHT, table)


def histogram(*, title: str, bins: Sequence[str], counts: Sequence[int], value_name: str = "Count",
              bin_name: str = "Bin", desc: str = "") -> SafeString:
    """A bar chart of counts per bin (bins in order, labelled with their range)."""
    return bar_chart(title=title, labels=bins, values=list(counts), value_name=value_name, label_name=bin_name,
                     desc=desc or f"Histogram of {value_name.lower()} per {bin_name.lower()}.")


def line_chart(*, title: str, labels: Sequence[str], series: Sequence[Series], fmt: Formatter = plain,
               label_name: str = "", desc: str = "") -> SafeString:
    """One or more series over the same x labels; gaps (None) break the line."""
    cid = _chart_id("line")
    nums = [float(v) for s in series for v in s.values if v is not None]
    ymax = _nice_max(max(nums, default=0.0))
    plot_w = WIDTH - PAD_LEFT - PAD_RIGHT
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    n = max(1, len(labels))
    step = plot_w / max(1, n - 1) if n > 1 else 0
    xs = [PAD_LEFT + (step * i if n > 1 else plot_w / 2) for i in range(len(labels))]
    parts = [_axis(ymax, fmt, plot_h)]
    legend = []
    for si, s in enumerate(series):
        cls, dash, marker = SERIES_STYLES[si % len(SERIES_STYLES)]
        segments: list[list[str]] = [[]]
        for i, v in enumerate(s.values):
            if v is None:
                segments.append([])
                continue
            y = PAD_TOP + plot_h - plot_h * float(v) / ymax
            segments[-1].append(f"{xs[i]:.1f},{y:.1f}")
            parts.append(_marker(marker, xs[i], y, cls, f"{s.name}, {labels[i]}: {fmt(v)}"))
        for seg in segments:
            if len(seg) > 1:
                dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
                parts.append(f'<polyline class="line {cls}" fill="none" points="{" ".join(seg)}"{dash_attr}/>')
        legend.append((cls, dash, marker, s.name))
    parts.append(_x_labels(labels, xs))
    legend_rows = 0
    if len(series) > 1:
        lx, ly = PAD_LEFT, HEIGHT - 8
        legend_rows = 1
        for cls, dash, marker, name in legend:
            width = 40 + 7 * len(name)
            if lx + width > WIDTH and lx > PAD_LEFT:  # wrap the legend onto another row
                lx, ly, legend_rows = PAD_LEFT, ly + 16, legend_rows + 1
            dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
            parts.append(f'<line class="line {cls}" x1="{lx}" x2="{lx + 24}" y1="{ly}" y2="{ly}"'
                         f"{dash_attr}/>" + _marker(marker, lx + 12, ly, cls, name)
                         + f'<text class="legend" x="{lx + 30}" y="{ly + 4}">{escape(name)}</text>')
            lx += width
    table = _table(title, [label_name or "Label", *[s.name for s in series]],
                   [[lbl, *[fmt(s.values[i]) for s in series]] for i, lbl in enumerate(labels)])
    return _figure(cid, title, desc or f"Line chart of {', '.join(s.name for s in series)}.", "".join(parts),
                   WIDTH, HEIGHT + 16 * legend_rows, table)


SPARK_W, SPARK_H = 200, 40


def sparkline(*, title: str, labels: Sequence[str], values: Sequence[Number], fmt: Formatter = plain,
              label_name: str = "Month", value_name: str = "Value") -> SafeString:
    """A figure card's trend: one small line scaled to its own range, no axes; the description says
    where it starts and ends and its range, and the values are in the table behind it."""
    cid = _chart_id("spark")
    points = [(i, float(v)) for i, v in enumerate(values) if v is not None]
    lo = min((v for _, v in points), default=0.0)
    hi = max((v for _, v in points), default=0.0)
    span = hi - lo or 1.0
    n = max(1, len(values) - 1)

    def xy(i: int, v: float) -> tuple[float, float]:
        return 4 + (SPARK_W - 8) * i / n, 4 + (SPARK_H - 8) * (1 - (v - lo) / span)

    segments: list[list[str]] = [[]]
    for i, v in enumerate(values):
        if v is None:
            segments.append([])
            continue
        x, y = xy(i, float(v))
        segments[-1].append(f"{x:.1f},{y:.1f}")
    parts = [f'<polyline class="line s1" fill="none" points="{" ".join(seg)}"/>' for seg in segments if len(seg) > 1]
    if points:
        (i0, v0), (i1, v1) = points[0], points[-1]
        parts.append(_marker("circle", *xy(i1, v1), "s1", f"{labels[i1]}: {fmt(v1)}"))
        desc = (f"From {fmt(v0)} in {labels[i0]} to {fmt(v1)} in {labels[i1]}; "
                f"lowest {fmt(lo)}, highest {fmt(hi)}.")
    else:
        desc = "No values yet."
    table = _table(title, [label_name, value_name], [[lbl, fmt(v)] for lbl, v in zip(labels, values, strict=True)])
    return _figure(cid, title, desc, "".join(parts), SPARK_W, SPARK_H, table, extra_class="sparkline")


def _marker(shape: str, x: float, y: float, cls: str, label: str) -> str:
    tip = f"<title>{escape(label)}</title>"
    if shape == "square":
        return f'<rect class="marker {cls}" x="{x - 3:.1f}" y="{y - 3:.1f}" width="6" height="6">{tip}</rect>'
    if shape == "triangle":
        return (f'<polygon class="marker {cls}" points="{x:.1f},{y - 4:.1f} {x - 4:.1f},{y + 3:.1f} '
                f'{x + 4:.1f},{y + 3:.1f}">{tip}</polygon>')
    if shape == "diamond":
        return (f'<polygon class="marker {cls}" points="{x:.1f},{y - 4:.1f} {x + 4:.1f},{y:.1f} {x:.1f},{y + 4:.1f} '
                f'{x - 4:.1f},{y:.1f}">{tip}</polygon>')
    return f'<circle class="marker {cls}" cx="{x:.1f}" cy="{y:.1f}" r="3">{tip}</circle>'


def heatmap(*, title: str, row_labels: Sequence[str], col_labels: Sequence[str],
            values: Sequence[Sequence[Number]], texts: Sequence[Sequence[str]] | None = None,
            row_name: str = "", col_name: str = "", desc: str = "", cell_w: int = 56, cell_h: int = 28,
            label_w: int = 72, figures: Sequence[Sequence[tuple[str, object] | None]] | None = None) -> SafeString:
    """A grid whose shade follows the value (five steps) and which prints every value in its cell.

    ``values`` drive the shade; ``texts`` (same shape) are printed, defaulting to the values.
    ``figures`` (same shape) name each cell's figure in the report document and its exact value,
    written as ``data-figure``/``data-value`` on the cell (tests compare them with the document).
    """
    cid = _chart_id("heat")
    nums = [float(v) for row in values for v in row if v is not None]
    top = max(nums, default=0.0)
    head_h = 24
    width = label_w + cell_w * max(1, len(col_labels)) + 8
    height = head_h + cell_h * max(1, len(row_labels)) + 8
    parts = []
    for j, col in enumerate(col_labels):
        parts.append(f'<text class="tick" x="{label_w + cell_w * j + cell_w / 2:.1f}" y="{head_h - 8}" '
                     f'text-anchor="middle">{escape(col)}</text>')
    for i, row in enumerate(row_labels):
        y = head_h + cell_h * i
        parts.append(f'<text class="tick" x="{label_w - 6}" y="{y + cell_h / 2 + 4:.1f}" '
                     f'text-anchor="end">{escape(row)}</text>')
        for j, _ in enumerate(col_labels):
            v = values[i][j] if j < len(values[i]) else None
            text = texts[i][j] if texts is not None and j < len(texts[i]) else plain(v)
            x = label_w + cell_w * j
            if v is None:
                parts.append(f'<rect class="cell empty" x="{x}" y="{y}" width="{cell_w - 2}" height="{cell_h - 2}"/>')
                continue
            level = 0 if top <= 0 else min(4, int(4 * float(v) / top + 0.5))
            figure = figures[i][j] if figures is not None and j < len(figures[i]) else None
            data = "" if figure is None else (f' data-figure="{escape(figure[0])}" '
                                              f'data-value="{escape("" if figure[1] is None else figure[1])}"')
            parts.append(f'<rect class="cell h{level}" x="{x}" y="{y}" width="{cell_w - 2}" '
                         f'height="{cell_h - 2}"{data}>'
                         f"<title>{escape(row_name)} {escape(row)}, {escape(col_name)} {escape(col_labels[j])}: "
                         f"{escape(text)}</title></rect>"
                         f'<text class="cell-text{" on-dark" if level >= 3 else ""}" x="{x + (cell_w - 2) / 2:.1f}" '
                         f'y="{y + cell_h / 2 + 3:.1f}" text-anchor="middle">{escape(text)}</text>')
    rows = []
    for i, row in enumerate(row_labels):
        cells = []
        for j in range(len(col_labels)):
            v = values[i][j] if j < len(values[i]) else None
            cells.append("" if v is None else (texts[i][j] if texts is not None else plain(v)))
        rows.append([row, *cells])
    header = [f"{row_name} \\ {col_name}" if row_name or col_name else "", *col_labels]
    table = _table(title, header, rows)
    return _figure(cid, title, desc or f"Heatmap of {title.lower()}: darker cells hold larger values; every cell "
                   "prints its value.", "".join(parts), width, height, table, extra_class="heatmap")
