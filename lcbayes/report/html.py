"""The report as one self-contained HTML file: figures embedded as PNG data URIs, styles
inline, no scripts and no external addresses, so it reads offline and in any browser."""

from __future__ import annotations

import base64
import io
from importlib import resources
from typing import Any

import jinja2
import pandas as pd

from lcbayes import __version__
from lcbayes.diagnostics import failing_elements
from lcbayes.prior_check import MAX_OUTSIDE, WITHIN_SD_BAND
from lcbayes.report.config import ReportConfig
from lcbayes.report.model_section import WEAK_IDENTIFICATION, ModelSection
from lcbayes.report.numbers import column_format

DPI = 150          # figures legible at their display size (natural width >= display width: no upscaling)


def figure(fig) -> str:
    """A matplotlib figure as a PNG data URI (no timestamp metadata, so equal figures give equal bytes)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def table(df: pd.DataFrame, index: bool = True) -> str:
    """A DataFrame as an HTML table (content escaped), its numbers formatted for reading
    (:func:`~lcbayes.report.numbers.column_format`); rows of posterior summaries that miss the convergence thresholds
    are marked."""
    df = df.copy()
    if {"r_hat", "ess_bulk", "ess_tail"} <= set(df.columns):
        df.insert(0, "check", ["fails" if b else "ok" for b in failing_elements(df)])
    formatters = {name: column_format(name, df[name]) for name in df.columns}
    return df.to_html(index=index, border=0, classes="table", na_rep="–", formatters=formatters)


def render(config: ReportConfig, data: dict[str, Any], sections: list[ModelSection],
           power: pd.DataFrame | None, manifest: dict[str, Any]) -> str:
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(figure=figure, table=table)
    template = env.from_string(resources.files("lcbayes.report").joinpath("template.html").read_text("utf-8"))
    return template.render(config=config, data=data, sections=sections, power=power, manifest=manifest,
                           version=__version__, weak=WEAK_IDENTIFICATION, max_outside=MAX_OUTSIDE,
                           within_band=WITHIN_SD_BAND,
                           all_warnings=[(s.entry.label, w) for s in sections for w in s.warnings])
