"""How numbers read in the report's HTML (``results.json`` keeps them at full precision): estimates to 3 significant
digits, R-hat to 3 decimals, ESS and counts as whole numbers."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

SIGNIFICANT = 3
# columns of whole numbers: effective sample sizes, counts, sizes (matched on the lower-case name)
COUNT_COLUMNS = ("ess", "n", "k", "count", "divergences", "draws", "replicates", "participants", "communities",
                 "sessions", "rows", "items", "fits", "n_obs")


def significant(value: Any, digits: int = SIGNIFICANT) -> str:
    """``value`` to ``digits`` significant digits, in fixed notation from 0.001 to a million (``0.0123``, ``3.51``,
    ``123``, ``12346``: whole numbers are never cut) and in scientific notation outside; non-numbers as ``str``."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        return str(value)
    v = float(value)
    if not math.isfinite(v):
        return "–" if math.isnan(v) else ("∞" if v > 0 else "−∞")
    if v == 0 or float(v).is_integer() and abs(v) < 1e6:
        return f"{v:.0f}"
    exponent = math.floor(math.log10(abs(v)))
    if exponent < -3 or exponent >= 6:
        return f"{v:.{digits - 1}e}"
    return f"{v:.{max(digits - 1 - exponent, 0)}f}"


def column_format(name: Any, values: pd.Series) -> Callable[[Any], str]:
    """The format of one table column, by its name and dtype: R-hat to 3 decimals, ESS and counts (and integer
    columns) as whole numbers, anything else by :func:`significant`."""
    label = "_".join(str(part) for part in name) if isinstance(name, tuple) else str(name)
    label = label.lower()
    if "r_hat" in label or label == "rhat":
        return lambda v: significant(v) if not isinstance(v, float | np.floating) or not math.isfinite(v) \
            else f"{v:.3f}"
    if pd.api.types.is_integer_dtype(values) or label.startswith("ess") or label in COUNT_COLUMNS:
        return lambda v: significant(v) if not isinstance(v, float | np.floating) or not math.isfinite(v) \
            else f"{v:.0f}"
    return significant
