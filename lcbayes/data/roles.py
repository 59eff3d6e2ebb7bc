"""Column roles: which column of the user's table plays which part in the study.

A roles mapping (a dict, or a TOML file with the same keys) looks like::

    community = "lc"              # learning community id            (required)
    participant = "person"        # person id, nested in community   (required)
    session = "session"           # session index 1..T               (required)
    organization = "employer"     # employer id, crossed             (optional)
    time = "week"                 # numeric timing of the session    (optional; default: session)

    [variables]                   # numeric columns, by analysis name
    learning = { column = "learning_outcome", level = "participant" }
    support = "sup"               # short form: the column name, session level

    [scales.climate]              # multi-item scale -> scale score named "climate"
    items = ["clim1", "clim2", "clim3", "clim4"]
    reverse = ["clim3"]           # reverse-keyed items: x' = low + high - x
    range = [1, 5]                # response range of every item
    min_share = 0.5               # share of answered items needed for a score

``level`` is ``"session"`` (varies over sessions, the default) or ``"participant"``
(a trait or end-of-study outcome, constant within a participant).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from lcbayes.data.io import read_toml
from lcbayes.errors import ConfigError, UnknownMeasureError, reject_unknown

FIX = " in the roles mapping"

Level = Literal["session", "participant"]
LEVELS: tuple[str, ...] = ("session", "participant")
ID_ROLES: tuple[str, ...] = ("community", "participant", "organization", "session", "time")
REQUIRED_ROLES: tuple[str, ...] = ("community", "participant", "session")
ROLE_NAMES: tuple[str, ...] = ID_ROLES + ("variables", "scales")


def _check_range(name: str, value: Any) -> tuple[int, int] | None:
    if value is None:
        return None
    ok = (isinstance(value, (list, tuple)) and len(value) == 2
          and all(isinstance(v, int) and not isinstance(v, bool) for v in value) and value[0] < value[1])
    if not ok:
        raise ConfigError(f"'{name}': range must be two integers [low, high] with low < high, got {value!r}. "
                          "Fix: e.g. range = [1, 5] for a 5-point scale.")
    return int(value[0]), int(value[1])


def _check_level(name: str, value: Any) -> Level:
    if value not in LEVELS:
        raise ConfigError(f"'{name}': level must be one of {', '.join(LEVELS)}, got {value!r}. "
                          "Fix: use level = \"participant\" for traits measured once, \"session\" otherwise.")
    return value


@dataclass(frozen=True)
class ResponseRange:
    """The range [low, high] of a measure's scores, on which the default priors are set: declared in the roles
    (``declared``), or, for a measure without one, the observed mean -/+ 2.5 observed SDs."""

    low: float
    high: float
    declared: bool = True

    @property
    def mid(self) -> float:
        """The middle of the range."""
        return (self.low + self.high) / 2

    @property
    def half(self) -> float:
        """Half the range's width (2 on a 1-5 scale): the unit of the default priors."""
        return (self.high - self.low) / 2


@dataclass(frozen=True)
class Variable:
    """A numeric single-column variable: ``column`` in the user's table."""

    name: str
    column: str
    level: Level = "session"
    range: tuple[int, int] | None = None  # declared response range, if a rating

    @classmethod
    def parse(cls, name: str, spec: Any) -> Variable:
        if isinstance(spec, str):
            return cls(name, spec)
        if not isinstance(spec, Mapping):
            raise ConfigError(f"variable '{name}': expected a column name or a table with 'column', got {spec!r}.")
        reject_unknown(spec, ("column", "level", "range"), f"key of variable '{name}'", FIX)
        if "column" not in spec:
            raise ConfigError(f"variable '{name}': missing 'column'. Fix: add column = \"<name>\".")
        return cls(name, str(spec["column"]), _check_level(name, spec.get("level", "session")),
                   _check_range(name, spec.get("range")))

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "level": self.level, **({"range": list(self.range)} if self.range else {})}


@dataclass(frozen=True)
class Scale:
    """A multi-item scale scored as the (prorated) mean of its items after reverse keying."""

    name: str
    items: tuple[str, ...]
    range: tuple[int, int]
    reverse: tuple[str, ...] = ()
    level: Level = "session"
    min_share: float = 0.5

    @property
    def n_options(self) -> int:
        """Number of response options A of each item (e.g. 5 for a 1..5 scale)."""
        return self.range[1] - self.range[0] + 1

    @classmethod
    def parse(cls, name: str, spec: Any) -> Scale:
        if not isinstance(spec, Mapping):
            raise ConfigError(f"scale '{name}': expected a table with 'items' and 'range'.")
        reject_unknown(spec, ("items", "reverse", "range", "level", "min_share"), f"key of scale '{name}'", FIX)
        items = spec.get("items")
        if not isinstance(items, (list, tuple)) or len(items) < 2:
            raise ConfigError(f"scale '{name}': 'items' must list at least two item columns. "
                              "Fix: a single-item measure belongs under [variables].")
        scale_range = _check_range(name, spec.get("range"))
        if scale_range is None:
            raise ConfigError(f"scale '{name}': missing 'range'. Fix: add range = [low, high], e.g. [1, 5].")
        reverse = tuple(spec.get("reverse", ()))
        stray = [r for r in reverse if r not in items]
        if stray:
            raise ConfigError(f"scale '{name}': reverse-keyed {stray} not among its items {list(items)}. "
                              "Fix: list only item columns of this scale under 'reverse'.")
        min_share = spec.get("min_share", 0.5)
        if not isinstance(min_share, (int, float)) or isinstance(min_share, bool) or not 0 < min_share <= 1:
            raise ConfigError(f"scale '{name}': min_share must be a number in (0, 1], got {min_share!r}. Fix: e.g. "
                              "min_share = 0.5 (a score needs half of the items answered).")
        return cls(name, tuple(str(i) for i in items), scale_range, tuple(str(r) for r in reverse),
                   _check_level(name, spec.get("level", "session")), min_share)

    def to_dict(self) -> dict[str, Any]:
        return {"items": list(self.items), "reverse": list(self.reverse), "range": list(self.range),
                "level": self.level, "min_share": self.min_share}


@dataclass(frozen=True)
class Roles:
    """Validated mapping of column roles (see the module docstring for the format)."""

    community: str
    participant: str
    session: str
    organization: str | None = None
    time: str | None = None
    variables: dict[str, Variable] = field(default_factory=dict)
    scales: dict[str, Scale] = field(default_factory=dict)

    @classmethod
    def parse(cls, mapping: Roles | Mapping[str, Any]) -> Roles:
        """Build from a plain mapping, rejecting unknown role names with a suggestion."""
        if isinstance(mapping, Roles):
            return mapping
        if not isinstance(mapping, Mapping):
            raise ConfigError(f"roles must be a mapping of role -> column, got {type(mapping).__name__}.")
        reject_unknown(mapping, ROLE_NAMES, "role name", FIX)
        missing = [r for r in REQUIRED_ROLES if not mapping.get(r)]
        if missing:
            raise ConfigError(f"roles lack {', '.join(missing)}. Fix: name the column of each, "
                              f"e.g. {missing[0]} = \"<column>\".")
        for role in ID_ROLES:
            if role in mapping and not isinstance(mapping[role], str):
                raise ConfigError(f"role '{role}' must be a column name (a string), got {mapping[role]!r}.")
        for group in ("variables", "scales"):
            if not isinstance(mapping.get(group, {}), Mapping):
                raise ConfigError(f"roles '{group}' must be a table of name -> definition, got {mapping[group]!r}. "
                                  f"Fix: e.g. [{group}.climate] with its keys.")
        named = [(r, mapping[r]) for r in ID_ROLES if mapping.get(r)]
        for i, (first, column) in enumerate(named):
            for second, other in named[i + 1:]:
                if column == other:
                    raise ConfigError(f"roles '{first}' and '{second}' both name column '{column}'. Fix: give each "
                                      "role its own column.")
        variables = {n: Variable.parse(n, s) for n, s in dict(mapping.get("variables", {})).items()}
        scales = {n: Scale.parse(n, s) for n, s in dict(mapping.get("scales", {})).items()}
        clash = sorted(set(variables) & set(scales))
        if clash:
            raise ConfigError(f"{clash} defined both as variable and as scale. Fix: rename one.")
        reserved = sorted((set(variables) | set(scales)) & set(ID_ROLES))
        if reserved:
            raise ConfigError(f"{reserved} cannot be used as variable names: they are role names. Fix: rename.")
        return cls(**{role: mapping[role] for role in ID_ROLES if role in mapping}, variables=variables, scales=scales)

    @classmethod
    def from_toml(cls, path: str | Path) -> Roles:
        """Read a roles TOML file."""
        return cls.parse(read_toml(path, "roles file"))

    def to_dict(self) -> dict[str, Any]:
        """Plain mapping that :meth:`parse` turns back into equal roles (round trip)."""
        groups: dict[str, dict[str, Any]] = {"variables": self.variables, "scales": self.scales}
        return {**self.id_columns, **{k: {n: m.to_dict() for n, m in g.items()} for k, g in groups.items() if g}}

    def to_toml(self, path: str | Path) -> None:
        """Write the roles as a TOML file readable by :meth:`from_toml`."""
        import tomli_w

        Path(path).write_text(tomli_w.dumps(self.to_dict()))

    @property
    def id_columns(self) -> dict[str, str]:
        """Role -> column for the identifier and timing roles that are mapped."""
        return {r: getattr(self, r) for r in ID_ROLES if getattr(self, r) is not None}

    @property
    def measures(self) -> list[str]:
        """Names of all analysis variables: single columns first, then scales."""
        return list(self.variables) + list(self.scales)

    def level_of(self, name: str) -> Level:
        """Measurement level of the variable or scale ``name``; an unknown name is an
        :class:`~lcbayes.errors.UnknownMeasureError` listing the known ones."""
        measure = self.variables.get(name) or self.scales.get(name)
        if measure is not None:
            return measure.level
        close = difflib.get_close_matches(str(name), self.measures, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise UnknownMeasureError(f"'{name}' is not a variable or scale of this study.{hint} Variables: "
                                  f"{', '.join(self.variables) or 'none'}; scales: {', '.join(self.scales) or 'none'}. "
                                  f"Fix: use one of these names (e.g. the spec's outcome), or declare '{name}' under "
                                  "[variables] or [scales] in the roles file.")
