"""Extra fixed effects by formula: the options ``location = "..."`` (every model) and ``scale = "..."`` (model B).

A formula names covariates of the study's table (variables and scales declared in the roles, and ``session`` and
``time``) and how they combine, in the syntax of Wilkinson formulas as Bambi reads them (the ``formulae`` library):
``"tenure + C(sector) + tenure:C(sector)"``, ``"scale(age)"``, ``"tenure * support"``. ``C(x)`` makes a variable
coded by numbers categorical: one coefficient per level other than the first (the reference). The formula's own
intercept is dropped (the model has one); there is no left-hand side and no group term (``(x | g)``).

Its columns X_k enter the built-in equation as a sum, over the participant x session cells of
:class:`~lcbayes.models.panel.Panel`:

    location:  mu_ti  += sum_k beta_k X_k,ti        beta_location  (location_term)
    scale:     log sigma_ti += sum_k alpha_k X_k,ti   alpha_scale   (scale_term)

Default priors are scaled to the data: beta_k ~ N(0, h_y/2 per 2 SDs of X_k) (the convention of
:func:`~lcbayes.models.priors.slope_prior`: per SD of a standardised predictor, h_y/4), alpha_k ~ N(0, 0.2 per SD of
X_k). New data (prediction) are coded as the fitted data were: the same levels, the same centring and scaling of
stateful transforms such as ``scale(x)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from lcbayes.errors import ConfigError
from lcbayes.models.base import Conclusion
from lcbayes.models.panel import Panel
from lcbayes.tables import describe

PARTS = {"location": ("beta_location", "location_term"), "scale": ("alpha_scale", "scale_term")}
COLUMNS = ("session", "time")   # id columns a formula may read besides the measures


@dataclass(frozen=True)
class FormulaTerms:
    """The extra terms of one part (``location`` or ``scale``) of a model.

    ``names``: the design columns (the labels of the coefficients); ``columns``: (k, P, T) their values per cell, 0
    where the study has no row; ``sd``: (k,) their SDs over the rows (the unit of the default priors); ``variables``:
    the measures the formula reads; ``design``: the coding of the fitted data (:mod:`formulae`'s common terms)."""

    part: str
    formula: str
    names: list[str]
    columns: np.ndarray
    sd: np.ndarray
    variables: list[str]
    design: Any

    @property
    def coefficient(self) -> str:
        return PARTS[self.part][0]

    @property
    def dim(self) -> str:
        return PARTS[self.part][1]

    @classmethod
    def parse(cls, part: str, formula: object, panel: Panel, outcome: str,
              fitted: FormulaTerms | None = None) -> FormulaTerms | None:
        """The terms of option ``part`` (``formula``: "" for none) on ``panel``'s study; with ``fitted`` (the terms
        of the fitted model), coded as those were. Rows whose outcome is observed need every variable the formula
        reads; a row without the outcome and without a variable gets 0 for the terms (it is in no likelihood). New
        data (with ``fitted``) need every variable in every row."""
        if not isinstance(formula, str):
            raise ConfigError(f"option {part} must be a formula string such as \"tenure + C(sector)\", got "
                              f"{formula!r}.")
        if not formula.strip():
            return None
        import formulae

        try:
            description = formulae.model_description(formula)
        except Exception as err:   # formulae raises its own parse errors
            raise ConfigError(f"option {part} = {formula!r} is not a formula formulae can read ({err}). Fix: e.g. "
                              f"{part} = \"tenure + C(sector)\".") from None
        if description.response is not None or description.group_terms:
            raise ConfigError(f"option {part} = {formula!r}: give the extra fixed terms only, without an outcome "
                              "('y ~') or group terms ('(1 | g)'): the model names the outcome and its group effects."
                              f" Fix: e.g. {part} = \"tenure + C(sector)\".")
        study = panel.study
        variables = sorted(str(v) for v in description.var_names)
        for name in variables:
            if name not in COLUMNS:
                study.roles.level_of(name)   # an unknown name: a typed error listing the measures
        table = study.table[variables]
        complete = table.notna().all(axis=1).to_numpy()
        outcome_seen = study.table[outcome].notna().to_numpy()
        gaps = np.flatnonzero((outcome_seen | (fitted is not None)) & ~complete)   # new data: every row
        if len(gaps):
            rows = ", ".join(str(r) for r in study.table.index[gaps[:10]])
            rows_of = f"row(s) with an observed {outcome}" if fitted is None else "row(s) to predict at"
            raise ConfigError(f"option {part} = {formula!r}: {len(gaps)} {rows_of} lack a "
                              f"value of {', '.join(c for c in variables if table[c].isna().any())} (rows {rows}"
                              f"{', ...' if len(gaps) > 10 else ''}). Fix: fill them in, or drop those rows from "
                              "the table.")
        if fitted is None:
            design = formulae.design_matrices(formula, table[complete]).common
        else:
            design = fitted.design
        try:
            frame = design.evaluate_new_data(table[complete]).as_dataframe() if fitted is not None or \
                not complete.all() else design.as_dataframe()
        except ValueError as err:   # e.g. a level of C(x) that the fitted data do not have
            raise ConfigError(f"option {part} = {formula!r} cannot code these data as the fitted data were ({err}). "
                              "Fix: use only levels and variables the fitted data have.") from None
        frame = frame.drop(columns=[c for c in frame.columns if c == "Intercept"])
        if frame.shape[1] == 0:
            raise ConfigError(f"option {part} = {formula!r} has no terms besides an intercept. Fix: name covariates.")
        names = [str(c) for c in frame.columns]
        values = np.zeros((len(table), len(names)))
        values[complete] = frame.to_numpy(dtype=float)
        cells = np.zeros((len(names),) + panel.shape)
        cells[:, study.idx["participant"], study.idx["session"]] = values.T
        if fitted is not None:
            return cls(part, formula, fitted.names, cells, fitted.sd, variables, design)
        sd = frame.std(ddof=0).to_numpy(dtype=float)
        constant = [n for n, v in zip(names, sd, strict=True) if not v > 0]
        if constant:
            raise ConfigError(f"option {part} = {formula!r}: the column(s) {constant} are constant over the rows "
                              "with an observed outcome, so their coefficients are not identified. Fix: leave them "
                              "out.")
        return cls(part, formula, names, cells, sd, variables, design)

    def term(self, priors: Any) -> Any:
        """sum_k coefficient_k X_k, (P, T), in the model in context (``X`` as ``pm.Data`` ``<part>_design``)."""
        import pymc as pm

        x = pm.Data(f"{self.part}_design", self.columns, dims=(self.dim, "participant", "session"))
        coefficient = priors[self.coefficient].create(self.coefficient, dims=self.dim)
        return sum(coefficient[k] * x[k] for k in range(len(self.names)))   # elementwise (components' note)

    def coords(self) -> dict[str, list]:
        return {self.dim: list(self.names)}

    def conclusions(self, posterior: Any) -> list[Conclusion]:
        """One sentence per coefficient for the report's "what to conclude", resting on that coefficient."""
        unit = "the outcome's units" if self.part == "location" else "the log residual SD"
        label = f"extra {self.part} term ({self.part} = \"{self.formula}\"), in {unit} per unit ({self.coefficient})"
        return [Conclusion(describe(f"{name}: {label}", posterior[self.coefficient].sel({self.dim: name})),
                           (f"{self.coefficient}[{name}]",)) for name in self.names]


def conclusions(posterior: Any, *terms: FormulaTerms | None) -> list[Conclusion]:
    """The report's sentences on the extra terms of every formula a model has (none without)."""
    return [c for t in terms if t is not None for c in t.conclusions(posterior)]
