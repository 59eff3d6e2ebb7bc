"""Decision rules applied to the posterior draws of one target parameter.

- ``excludes_zero`` (``prob``, default 0.95): the central ``prob`` interval excludes 0;
- ``direction`` (``sign`` positive/negative, ``threshold``, default 0.975): P(theta > 0)
  (or < 0) is at least the threshold;
- ``rope`` (``low``, ``high``, ``outside`` true/false, ``prob``, default 0.95): the central
  interval lies wholly outside (or wholly inside) the region of practical equivalence;
- ``width`` (``max``, ``prob``, default 0.9): the central interval is at most ``max`` wide.

Each rule has a ``name`` (a column of the results); by default one is made from its settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lcbayes.errors import ConfigError, reject_unknown

SETTINGS: dict[str, dict[str, Any]] = {
    "excludes_zero": {"prob": 0.95}, "direction": {"sign": "positive", "threshold": 0.975},
    "rope": {"low": None, "high": None, "outside": True, "prob": 0.95}, "width": {"max": None, "prob": 0.9}}
# default names; prob and threshold in percent, side: outside or inside
NAMES = {"excludes_zero": "excludes_zero_{prob}", "direction": "p_{sign}_{threshold}",
         "rope": "rope_{side}_{low:g}_{high:g}_{prob}", "width": "width_le_{max:g}_{prob}"}


@dataclass(frozen=True)
class Rule:
    """One decision rule: its kind, settings and column name."""

    kind: str
    settings: dict[str, Any] = field(default_factory=dict)
    name: str = ""

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Rule:
        kind = raw.get("rule")
        if kind not in SETTINGS:
            raise ConfigError(f"decision rule {kind!r} unknown. Valid: {', '.join(SETTINGS)}.")
        given = {k: v for k, v in raw.items() if k not in ("rule", "name")}
        reject_unknown(given, list(SETTINGS[kind]), f"setting of rule {kind}")
        settings = {**SETTINGS[kind], **given}
        missing = [k for k, v in settings.items() if v is None]
        if missing:
            raise ConfigError(f"rule {kind} needs {', '.join(missing)}.")
        if "prob" in settings and not 0 < float(settings["prob"]) < 1:
            raise ConfigError(f"rule {kind}: prob must lie in (0, 1), got {settings['prob']}.")
        if kind == "direction" and settings["sign"] not in ("positive", "negative"):
            raise ConfigError(f"rule direction: sign must be positive or negative, got {settings['sign']!r}.")
        if kind == "rope" and not float(settings["low"]) < float(settings["high"]):
            raise ConfigError("rule rope: low must be below high.")
        values = {**settings, "side": "outside" if settings.get("outside") else "inside"}
        values.update({k: f"{float(values[k]) * 100:g}" for k in ("prob", "threshold") if k in values})
        return cls(kind, settings, str(raw.get("name") or NAMES[kind].format(**values)))

    def decide(self, draws: np.ndarray) -> bool:
        """The decision for one replicate's posterior draws (1-d)."""
        s = self.settings
        if self.kind == "direction":
            return float(np.mean(draws > 0 if s["sign"] == "positive" else draws < 0)) >= float(s["threshold"])
        lo, hi = central_interval(draws, float(s["prob"]))
        if self.kind == "excludes_zero":
            return bool(lo > 0 or hi < 0)
        if self.kind == "rope":
            outside = hi < float(s["low"]) or lo > float(s["high"])
            inside = lo >= float(s["low"]) and hi <= float(s["high"])
            return bool(outside if s["outside"] else inside)
        return bool(hi - lo <= float(s["max"]))


def central_interval(draws: np.ndarray, prob: float) -> tuple[float, float]:
    """Equal-tailed interval holding ``prob`` of the draws."""
    lo, hi = np.quantile(draws, [(1 - prob) / 2, (1 + prob) / 2])
    return float(lo), float(hi)

