"""Simulation-based power analysis and calibration: plans, runner, results store, summaries."""

from lcbayes.power.plan import Cell, Plan, Target
from lcbayes.power.rules import Rule
from lcbayes.power.runner import replicate_seeds, run
from lcbayes.power.store import PlanChangedError, ResultStore
from lcbayes.power.summary import clopper_pearson, plot_power_curve, smallest_design, summarize

__all__ = ["Cell", "Plan", "PlanChangedError", "ResultStore", "Rule", "Target", "clopper_pearson",
           "plot_power_curve", "replicate_seeds", "run", "smallest_design", "summarize"]
