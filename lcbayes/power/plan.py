"""Power plans: which model, which designs and effect sizes, which targets and decision rules.

A plan is data (TOML on disk)::

    model = "consensus_emergence"
    replicates = 100                   # per cell (design x scenario)
    seed = 2026                        # root seed; each replicate's seed derives from it
    interval = 0.9                     # central interval kept for coverage and width
    min_ess = 400                      # a fit passes its diagnostics with bulk/tail ESS >= this,
                                       # R-hat <= 1.01, no divergences, E-BFMI >= 0.3

    [spec]                             # the model spec (as in models/*.toml), or spec = "path.toml"
    outcome = "climate"
    options = { composition = ["lgo_sd"], organization = false }
    sampler = { chains = 2, draws = 500, tune = 500 }

    [design]                           # every list is a grid axis; each combination is a design
    communities = [10, 20]
    participants = [8, 12]
    sessions = [6]
    attrition = [0.05]

    [scenarios.small]                  # true values: overrides of the simulator's defaults
    climate = { alpha1 = -0.05 }

    [[targets]]
    parameter = "alpha_time"           # posterior variable; an element as "pi[support]"
    truth = "climate.alpha1"           # its true value in the scenario (sharing.f[3], sharing.pi[0], ...)
    rules = [{ rule = "excludes_zero", prob = 0.95 },
             { rule = "direction", sign = "negative", threshold = 0.975 }]
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from lcbayes.data.io import read_toml
from lcbayes.data.simulate import TRUTHS, Design
from lcbayes.errors import ConfigError, reject_unknown, table
from lcbayes.models import model_class
from lcbayes.models.spec import ModelSpec, read_spec
from lcbayes.power.rules import Rule

DESIGN_FIELDS = [f.name for f in fields(Design)]
_ELEMENT = re.compile(r"^(\w+)(?:\[([^\]]+)\])?$")


@dataclass(frozen=True)
class Target:
    """A posterior quantity to judge: ``parameter`` (``name`` or ``name[label]``), the path of
    its true value in the scenario truth, and the decision rules applied to it."""

    parameter: str
    truth: str
    rules: tuple[Rule, ...]

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Target:
        reject_unknown(raw, ["parameter", "truth", "rules"], "target key")
        for key in ("parameter", "truth"):
            if key not in raw:
                raise ConfigError(f"a target lacks '{key}'. Fix: e.g. parameter = \"alpha_time\", "
                                  f"truth = \"climate.alpha1\".")
        rules = tuple(Rule.parse(r) for r in raw.get("rules", []))
        if not rules:
            raise ConfigError(
                f"target {raw['parameter']!r} has no rules. Fix: rules = [{{ rule = \"excludes_zero\" }}].")
        return cls(str(raw["parameter"]), str(raw["truth"]), rules)

    def __post_init__(self) -> None:
        if not _ELEMENT.match(self.parameter):
            raise ConfigError(f"target parameter {self.parameter!r}: write name or name[label].")

    @property
    def variable(self) -> str:
        return self.parameter.partition("[")[0]

    @property
    def label(self) -> str | None:
        return self.parameter.partition("[")[2].removesuffix("]") or None

    def true_value(self, truths: Mapping[str, Any], design: Design) -> float:
        """The true value: ``group.field`` or ``group.field[i]`` of the scenario's truths
        (``truths``: process name -> truth, as :meth:`Plan.truth_of` gives them), as a float."""
        group, _, rest = self.truth.partition(".")
        match = _ELEMENT.match(rest)
        if group not in truths or not match:
            raise ConfigError(f"target truth {self.truth!r}: write {' or '.join(f'{g}.<field>[i]' for g in truths)}.")
        obj, name, index = truths[group], match.group(1), match.group(2)
        if name not in {f.name for f in fields(obj)}:
            raise ConfigError(f"target truth {self.truth!r}: {type(obj).__name__} has no field {name!r}.")
        value = obj.field_value(name, design)
        return float(value[int(index)] if index is not None else value)


@dataclass(frozen=True)
class Cell:
    """One design x scenario combination of a plan."""

    design: dict[str, Any]
    scenario: str

    @property
    def key(self) -> str:
        """Stable identifier from the cell's content (not its position in the grid)."""
        text = json.dumps({"design": self.design, "scenario": self.scenario}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.design.items()) + f", scenario={self.scenario}"


@dataclass(frozen=True)
class Plan:
    """A validated power plan (see the module docstring)."""

    model: str
    spec: dict[str, Any]
    design: dict[str, list]
    scenarios: dict[str, dict[str, dict[str, Any]]]
    targets: tuple[Target, ...]
    replicates: int
    seed: int
    interval: float = 0.9
    min_ess: float = 400
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def parse(cls, raw: Mapping[str, Any], base: Path | None = None, require_targets: bool = True) -> Plan:
        """Validate a plan mapping; a ``spec`` given as a path is read relative to ``base``.
        Calibration plans (``require_targets=False``) rank every population parameter instead."""
        plain: dict[str, Any] = json.loads(json.dumps(table(raw, "a power plan", 'model = "climate_growth"'),
                                                      default=str))  # plain, detached copy
        reject_unknown(plain, [f.name for f in fields(cls) if f.name != "raw"], "plan key")
        model_cls = model_class(plain.get("model"))
        model = model_cls.name
        if isinstance(plain.get("spec"), str):
            plain["spec"] = read_spec((base or Path(".")) / plain["spec"])
        spec = {**table(plain.get("spec", {}), "the plan's spec", 'spec = "models/climate_growth.toml"'),
                "model": model}
        if "outcome" in spec:      # the runner completes a spec without one from the model's spec file
            ModelSpec.parse(spec, model, model_cls.option_defaults, model_cls.sampler_defaults)
        design = {k: (v if isinstance(v, list) else [v])
                  for k, v in table(plain.get("design", {}), "the plan's [design]", "communities = [10, 20]").items()}
        reject_unknown(design, DESIGN_FIELDS, "design field")
        empty = [k for k, v in design.items() if not v]
        if empty:
            raise ConfigError(f"design field {empty[0]} lists no values, so the plan has no designs. Fix: give at "
                              f"least one, e.g. {empty[0]} = [20].")
        scenarios: dict[str, Any] = dict(table(plain.get("scenarios") or {"default": {}}, "the plan's [scenarios]",
                                               "[scenarios.small] climate = { alpha1 = -0.05 }"))
        for name, groups in scenarios.items():
            reject_unknown(table(groups, f"scenario {name!r}", "climate = { alpha1 = -0.05 }"), list(TRUTHS),
                           f"truth group of scenario {name!r}")
            for group, values in groups.items():
                reject_unknown(table(values, f"truth group {group!r} of scenario {name!r}", "{ alpha1 = -0.05 }"),
                               [f.name for f in fields(TRUTHS[group])], f"field of {group} truth")
        raw_targets = plain.get("targets", [])
        if not isinstance(raw_targets, list):
            raise ConfigError(f"targets must be a list of [[targets]] tables, got {raw_targets!r}. Fix: write each as "
                              "[[targets]] with parameter, truth and rules.")
        targets = tuple(Target.parse(table(t, "a [[targets]] entry", 'parameter = "alpha_time"'))
                        for t in raw_targets)
        if not targets and require_targets:
            raise ConfigError("the plan has no [[targets]]. Fix: add parameter, truth and rules.")
        numbers = {"replicates": 100, "seed": 0, "interval": 0.9, "min_ess": 400}
        for key, default in numbers.items():
            value = plain.get(key, default)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or \
                    (isinstance(default, int) and value != int(value)):
                raise ConfigError(f"plan {key} must be {'a whole number' if isinstance(default, int) else 'a number'}"
                                  f", got {value!r}. Fix: e.g. {key} = {default}.")
        replicates, seed = int(plain.get("replicates", 100)), int(plain.get("seed", 0))
        interval = float(plain.get("interval", 0.9))
        if replicates < 1 or seed < 0 or not 0 < interval < 1:
            raise ConfigError("replicates must be >= 1, seed >= 0 and interval in (0, 1).")
        plan = cls(model, spec, design, scenarios, targets, replicates, seed, interval,
                   float(plain.get("min_ess", 400)), plain)
        for cell in plan.cells():   # every design valid, every truth path readable
            cell_design, truths = plan.design_of(cell), plan.truth_of(cell)
            for t in targets:
                try:
                    t.true_value(truths, cell_design)
                except (TypeError, ValueError, IndexError) as err:
                    raise ConfigError(f"target {t.parameter!r}: its truth {t.truth!r} in {cell.label()} is not a "
                                      f"number ({err}). Fix: give the truth field a number.") from None
        return plan

    @classmethod
    def from_path(cls, path: str | Path) -> Plan:
        path = Path(path)
        return cls.parse(read_toml(path, "plan file"), base=path.parent)

    def cells(self) -> list[Cell]:
        """All design x scenario combinations, in grid order."""
        combos = itertools.product(*self.design.values())   # one empty combination if no design is given
        return [Cell(dict(zip(self.design, values, strict=True)), s) for values in combos for s in self.scenarios]

    def design_of(self, cell: Cell) -> Design:
        try:
            return Design(**_tuples(cell.design))
        except (TypeError, ValueError) as err:   # values of the wrong kind, or out of range
            raise ConfigError(f"design {cell.label()}: {err}. Fix: give each design field numbers, e.g. "
                              "communities = [10, 20].") from None

    def truth_of(self, cell: Cell) -> dict[str, Any]:
        """The true values of ``cell``'s scenario: process name (a key of
        :data:`~lcbayes.data.simulate.TRUTHS`) -> truth, defaults overridden by the scenario."""
        groups = self.scenarios[cell.scenario]
        try:
            return {group: truth(**_tuples(groups.get(group, {}))) for group, truth in TRUTHS.items()}
        except (TypeError, ValueError) as err:
            raise ConfigError(f"scenario {cell.scenario!r}: {err}. Fix: give each truth field a number (or a list "
                              "of numbers where the default is one).") from None

    def to_json(self) -> str:
        return json.dumps(self.raw, sort_keys=True)

    def hash(self) -> str:
        """SHA-256 of the plan (canonical JSON) without ``replicates`` (more replicates extend a
        run): it identifies the results folder the plan writes to."""
        core = {k: v for k, v in self.raw.items() if k != "replicates"}
        return hashlib.sha256(json.dumps(core, sort_keys=True).encode()).hexdigest()


def _tuples(values: Mapping[str, Any]) -> dict[str, Any]:
    """Lists (from TOML/JSON) as tuples, as the frozen truth dataclasses hold them."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
