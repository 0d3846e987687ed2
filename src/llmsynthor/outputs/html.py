"""The pieces of a self-contained HTML report page, for every record shape: style, colours, tables,
number format, numbered plotly figures, the values-outside-the-domain table, and the page itself
(plotly.js embedded once, so the page opens offline)."""

from __future__ import annotations

import html

import numpy as np

from ..core.records import describe_outside
from ..core.schema import Schema
from ..evaluation.cells import OUTSIDE_LABEL

SYNTHETIC, TARGET, REFERENCE = "#1f77b4", "#ff7f0e", "#2ca02c"
STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}
h1{font-size:1.6rem}h2{font-size:1.25rem;border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}td,th{padding:.2rem .6rem;border-bottom:1px solid #eee;text-align:right}
td:first-child,th:first-child{text-align:left}.note{color:#555;font-size:.9rem}.plot{margin:.5rem 0 1.5rem}
"""


def html_table(header: list[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(fmt(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def fmt(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, float | np.floating):
        return f"{value:.4f}" if abs(value) < 100 else f"{value:,.1f}"
    return str(value)


class Figures:
    """Collects plotly figures as <div>s; numbered so every div id is unique on the page."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, fig) -> str:
        import plotly.io as pio

        self.count += 1
        fig.update_layout(template="plotly_white", legend={"orientation": "h", "x": 1, "xanchor": "right", "y": 1.02, "yanchor": "bottom"})
        if fig.layout.margin.t is None:  # a figure that set its own margins (room for buttons) keeps them
            fig.update_layout(margin={"l": 60, "r": 20, "t": 50, "b": 60})
        div = pio.to_html(fig, full_html=False, include_plotlyjs=False, div_id=f"plot-{self.count}",
                          config={"displaylogo": False, "responsive": True})
        return f'<div class="plot">{div}</div>'


def outside_table(outside: dict[str, dict], n: int, schema: Schema, side: str) -> str:
    """Values outside the domain per variable (scored as error in the tables)."""
    rows = [[name, info["count"], f"{info['share']:.2%}", info["missing"], describe_outside(name, info, schema)]
            for name, info in outside.items()]
    return (f"<p class='note'>{html.escape(side)}: values outside the spec's domains, of {n:,} records. A record with one falls "
            f"in an extra cell “{OUTSIDE_LABEL}” of every table over that variable, whose target is 0, so it counts as error.</p>"
            + html_table([f"variable ({side})", "values outside", "share", "missing", "what"], rows))


def page(title: str, sections: list[str], figure: Figures) -> str:
    """The whole page: ``sections`` in order, plotly.js embedded once."""
    from plotly.offline import get_plotlyjs

    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style>"
            f"<script>{get_plotlyjs()}</script></head><body data-plots='{figure.count}'>"
            + "".join(sections) + "</body></html>")
