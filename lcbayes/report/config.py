"""Report configuration: which data, roles and model specs a report uses, and its seed.

A configuration is a TOML file (see ``reports/example.toml``); relative paths in it are
relative to the file. Everything that changes a report's numbers is in the configuration
or in the files it names, so the configuration's SHA-256 and theirs identify a report::

    title = "Learning communities: example study"
    data = "../data/example_study.csv"
    roles = "../data/example_roles.toml"
    seed = 2026                       # every model's sampler seed and the predictive checks
    out = "_build/example"            # default: _build/<config name> next to the file

    [agreement]                       # the climate table (default: the first scale, uniform null)
    measure = "climate"

    [[models]]
    spec = "../models/consensus_emergence.toml"
    sampler = { draws = 1000 }        # overrides of the spec's sampler settings
    compare = [{ label = "constant spread", options = { emergence = false } }]   # LOO against refits
    # a variant may set its own sampler overrides: { label = ..., options = { ... }, sampler = { draws = 2000 } }

    [prior_predictive]
    draws = 200                       # prior predictive datasets per model

    power = "../power/emergence"      # optional: a folder written by `lcbayes power`
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lcbayes.data.io import read_toml
from lcbayes.errors import ConfigError, reject_unknown, table
from lcbayes.models import MODELS
from lcbayes.models.spec import read_spec

KEYS = ["title", "data", "roles", "seed", "out", "agreement", "models", "prior_predictive", "power"]
MODEL_KEYS = ["spec", "name", "label", "sampler", "compare"]


@dataclass(frozen=True)
class Variant:
    """A refit of a model with some options changed, compared with it by LOO."""

    label: str
    options: dict[str, Any]
    sampler: dict[str, Any] = field(default_factory=dict)   # overrides of the model's sampler settings (not the seed)


@dataclass(frozen=True)
class ModelEntry:
    """One model of a report: its key (unique in the report), label, spec file and the spec
    as fitted (sampler overrides and the report's seed applied), and its LOO variants."""

    key: str
    label: str
    spec_path: Path
    spec: dict[str, Any]
    variants: tuple[Variant, ...]

    def variant_spec(self, variant: Variant) -> dict[str, Any]:
        return {**self.spec, "options": {**self.spec.get("options", {}), **variant.options},
                "sampler": {**self.spec.get("sampler", {}), **variant.sampler}}


@dataclass(frozen=True)
class ReportConfig:
    """A parsed, validated report configuration (see the module docstring)."""

    path: Path
    title: str
    data: Path
    roles: Path
    seed: int
    out: Path
    measure: str | None
    null: str
    models: tuple[ModelEntry, ...]
    prior_draws: int
    power: Path | None

    @classmethod
    def from_path(cls, path: str | Path) -> ReportConfig:
        path = Path(path).resolve()
        return cls.parse(read_toml(path, "report configuration"), path)

    @classmethod
    def parse(cls, raw: Mapping[str, Any], path: Path) -> ReportConfig:
        raw = table(raw, f"report configuration '{path}'", 'data = "study.csv"')
        reject_unknown(raw, KEYS, "report key")
        here = path.parent
        for key in ("data", "roles") + tuple(k for k in ("out", "power", "title") if k in raw):
            if key in ("data", "roles") and key not in raw:
                raise ConfigError(f"report configuration '{path}' names no {key}. Fix: {key} = \"<path>\".")
            if not isinstance(raw[key], str) or "\0" in raw[key]:
                raise ConfigError(f"report {key} must be a path or text, got {raw[key]!r}. Fix: {key} = \"...\".")
        data, roles = (here / raw["data"]).resolve(), (here / raw["roles"]).resolve()
        for key, file in (("data", data), ("roles", roles)):
            if not file.is_file():
                raise ConfigError(f"report {key} file '{file}' not found (from {key} = \"{raw[key]}\" in '{path}').")
        seed = raw.get("seed", 2026)
        if not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"report seed must be a non-negative integer, got {seed!r}.")
        agreement = dict(table(raw.get("agreement", {}), "[agreement]", 'measure = "climate"'))
        prior = dict(table(raw.get("prior_predictive", {}), "[prior_predictive]", "draws = 200"))
        reject_unknown(agreement, ["measure", "null"], "agreement key")
        reject_unknown(prior, ["draws"], "prior_predictive key")
        draws = prior.get("draws", 200)
        if not isinstance(draws, int) or isinstance(draws, bool) or draws < 10:
            raise ConfigError(f"[prior_predictive] draws must be a whole number of at least 10, got {draws!r}. "
                              "Fix: e.g. draws = 200.")
        entries = raw.get("models", [])
        if not isinstance(entries, list):
            raise ConfigError(f"models must be a list of [[models]] tables, got {entries!r}. Fix: write each model as "
                              "[[models]]\nspec = \"<spec file>\".")
        if not entries:
            raise ConfigError(f"report configuration '{path}' lists no models. "
                              "Fix: add [[models]] tables with spec = \"<spec file>\".")
        models = tuple(_model_entry(e, here, seed, i) for i, e in enumerate(entries))
        keys = [m.key for m in models]
        if len(set(keys)) < len(keys):
            raise ConfigError(f"report models share a name ({', '.join(keys)}). "
                              "Fix: give each [[models]] table a distinct name = \"...\".")
        power = here / raw["power"] if "power" in raw else None
        if power is not None and not (power / "summary.csv").is_file():
            raise ConfigError(f"power = \"{raw['power']}\": '{power / 'summary.csv'}' not found. "
                              "Fix: run `lcbayes power PLAN --out <that folder>` first, or remove the key.")
        return cls(path=path, title=str(raw.get("title", path.stem)), data=data, roles=roles, seed=seed, power=power,
                   out=here / raw.get("out", f"_build/{path.stem}"), measure=agreement.get("measure"), models=models,
                   null=str(agreement.get("null", "uniform")), prior_draws=draws)


def _model_entry(raw: Any, here: Path, seed: int, position: int) -> ModelEntry:
    if not isinstance(raw, Mapping) or "spec" not in raw:
        raise ConfigError(f"models entry {position + 1} must be a table with spec = \"<spec file>\", got {raw!r}.")
    reject_unknown(raw, MODEL_KEYS, f"key of models entry {position + 1}")
    if not isinstance(raw["spec"], str) or "\0" in raw["spec"]:
        raise ConfigError(f"models entry {position + 1}: spec must be the path of a spec file, got {raw['spec']!r}. "
                          "Fix: spec = \"models/climate_growth.toml\".")
    spec_path = here / raw["spec"]
    spec = read_spec(spec_path)
    name = spec.get("model")
    if name not in MODELS:
        raise ConfigError(f"spec '{spec_path}' names model {name!r}; available: {', '.join(MODELS)}.")
    sampler = dict(table(raw.get("sampler", {}), f"sampler of models entry {position + 1}", "draws = 1000"))
    if "seed" in sampler:
        raise ConfigError(f"models entry {position + 1} sets a sampler seed; the report's seed = ... sets every "
                          "model's seed. Fix: remove it from sampler.")
    spec["sampler"] = {**spec.get("sampler", {}), **sampler, "seed": seed}
    variants = []
    compare = raw.get("compare", [])
    if not isinstance(compare, list):
        raise ConfigError(f"compare of models entry {position + 1} must be a list, got {compare!r}. Fix: compare = "
                          "[{ label = \"...\", options = { ... } }].")
    for v in compare:
        if (not isinstance(v, Mapping) or not {"label", "options"} <= set(v) <= {"label", "options", "sampler"}
                or not isinstance(v["options"], Mapping)):
            raise ConfigError(f"compare entries of models entry {position + 1} need label and options (and may "
                              f"have sampler), got {v!r}. Fix: compare = [{{ label = \"...\", options = {{ ... }} }}].")
        own = dict(table(v.get("sampler", {}), f"sampler of compare entry '{v['label']}'", "draws = 2000"))
        if "seed" in own:
            raise ConfigError(f"compare entry '{v['label']}' sets a sampler seed; the report's seed = ... sets every "
                              "model's seed. Fix: remove it from sampler.")
        variants.append(Variant(str(v["label"]), dict(v["options"]), own))
    key = str(raw.get("name", name))
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", key):
        raise ConfigError(f"models entry {position + 1}: name {key!r} cannot name its fit file (fits/<name>.nc): use "
                          "letters, digits, '_', '.' and '-', starting with a letter or digit. Fix: e.g. name = "
                          "\"climate_items\".")
    return ModelEntry(key, str(raw.get("label", key.replace("_", " "))), spec_path, spec, tuple(variants))


def sha256_file(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
