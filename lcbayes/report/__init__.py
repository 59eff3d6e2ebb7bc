"""Reproducible reports (``lcbayes report CONFIG``): configuration, per-model sections,
power-scaling prior sensitivity, the self-contained HTML file, provenance and verification."""

from lcbayes.report.build import build_report
from lcbayes.report.config import ReportConfig
from lcbayes.report.verify import verify

__all__ = ["ReportConfig", "build_report", "verify"]
