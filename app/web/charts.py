"""Charts drawn on the server as SVG: no script, no external library, readable without CSS.

Each chart carries a <title> and <desc>, and the page shows the same numbers in a table, so a
screen reader user loses nothing. The callers pass labels in the words their tables use.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from html import escape

# Okabe-Ito's colour-blind-safe palette, its yellow and sky blue darkened so that every
# colour has at least 3:1 against white (WCAG 1.4.11).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#8F6A00", "#2F7DB8", "#000000")
# Wider than Arial's widest lower-case average at 1 px font size, so a label measured with it
# is never wider than the room made for it.
CHAR_WIDTH = 0.62


def day_label(day: date) -> str:
    """A day as the chart's axis and the table beside it both write it: 3 Dec."""
    return day.strftime("%-d %b")


def stacked_bars(
    days: Sequence[date], series: dict[date, dict[str, int]], keys: Sequence[str], title: str
) -> str:
    width, height, left, bottom, top = 640, 220, 36, 28, 10
    plot_h = height - bottom - top
    peak = max([sum(series.get(d, {}).values()) for d in days] + [1])
    bar_w = (width - left - 10) / max(len(days), 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="chart-title chart-desc" class="chart">',
        f'<title id="chart-title">{escape(title)}</title>',
        '<desc id="chart-desc">Stacked bars, one per day, coloured by purpose; the table '
        "below gives the same numbers.</desc>",
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 5}" y2="{top + plot_h}" '
        f'stroke="#505a5f"/>',
        f'<text x="{left - 6}" y="{top + 8}" text-anchor="end" font-size="11">{peak}</text>',
        f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end" font-size="11">0</text>',
    ]
    for i, day in enumerate(days):
        x = left + i * bar_w + 2
        y = float(top + plot_h)
        for k, key in enumerate(keys):
            count = series.get(day, {}).get(key, 0)
            if not count:
                continue
            h = plot_h * count / peak
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w - 4:.1f}" height="{h:.1f}" '
                f'fill="{PALETTE[k % len(PALETTE)]}"><title>{day_label(day)}, '
                f"{escape(key)}: {count}</title></rect>"
            )
        if i % 2 == 0:
            parts.append(
                f'<text x="{x + bar_w / 2 - 2:.1f}" y="{height - 10}" text-anchor="middle" '
                f'font-size="10">{day_label(day)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def horizontal_bars(items: Sequence[tuple[str, int]], title: str) -> str:
    row, font = 26, 13
    # Room for the longest label, so none is cut off at the chart's left edge.
    left = 8 + int(CHAR_WIDTH * font * max([len(label) for label, _ in items] + [10]))
    width = max(640, left + 360)
    height = max(len(items), 1) * row + 10
    peak = max([n for _, n in items] + [1])
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" class="chart">',
        f"<title>{escape(title)}</title>",
    ]
    for i, (label, count) in enumerate(items):
        y = 5 + i * row
        w = (width - left - 60) * count / peak
        parts.append(
            f'<text x="{left - 8}" y="{y + 16}" text-anchor="end" font-size="13">'
            f"{escape(label)}</text>"
            f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="{row - 8}" '
            f'fill="{PALETTE[0]}"/>'
            f'<text x="{left + w + 6:.1f}" y="{y + 16}" font-size="13">{count}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
