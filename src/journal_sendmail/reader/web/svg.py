"""Pictures for /stats, drawn on the server as SVG: no script and no chart library in the page."""

from __future__ import annotations

from html import escape


def bars(rows: list[tuple[str, int]], width: int = 900, height: int = 220, title: str = "") -> str:
    """A bar chart of ``(label, count)`` in the given order, as an inline ``<svg>`` element.

    Every label is escaped: a day or a host name from a mail is data, never markup.

    >>> '<rect' in bars([("2026-11-28", 3), ("2026-11-29", 5)]), '&lt;b&gt;' in bars([("<b>", 1)])
    (True, True)
    """
    top = max((c for _, c in rows), default=0) or 1
    left, bottom, pad = 48, 36, 10
    plot_w, plot_h = width - left - pad, height - bottom - pad
    step = plot_w / max(len(rows), 1)
    bar = min(max(step * 0.8, 1.0), 48.0)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="{escape(title)}">', f"<title>{escape(title)}</title>",
           f'<line x1="{left}" y1="{pad + plot_h}" x2="{width - pad}" y2="{pad + plot_h}" class="axis"/>',
           f'<text x="{left - 6}" y="{pad + 10}" class="tick" text-anchor="end">{top}</text>',
           f'<text x="{left - 6}" y="{pad + plot_h}" class="tick" text-anchor="end">0</text>']
    label_every = max(1, len(rows) // 12)
    for i, (label, count) in enumerate(rows):
        h = plot_h * count / top
        x = left + i * step + (step - bar) / 2
        out.append(f'<rect x="{x:.1f}" y="{pad + plot_h - h:.1f}" width="{bar:.1f}" height="{h:.1f}" class="bar">'
                   f"<title>{escape(label)}: {count}</title></rect>")
        if i % label_every == 0:
            out.append(f'<text x="{x + bar / 2:.1f}" y="{height - bottom + 16}" class="tick" '
                       f'text-anchor="middle">{escape(label[5:] if len(label) == 10 else label)}</text>')
    out.append("</svg>")
    return "\n".join(out)
