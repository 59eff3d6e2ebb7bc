"""lcbayes: Bayesian hierarchical longitudinal models for inter-organizational learning communities."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lcbayes")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0+unknown"
