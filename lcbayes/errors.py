"""Typed exceptions of lcbayes.

Every error a user can trigger with bad input derives from :class:`LcbayesError`, so notebooks and the CLI can catch one
type. Validation errors carry a list of :class:`Problem` records (column, offending rows, what is wrong, how to fix it)
so that all problems in a table are reported at once rather than one per run."""

from __future__ import annotations

import difflib
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

MAX_ROWS_SHOWN = 5


class LcbayesError(Exception):
    """Base class of all errors raised by lcbayes on bad input or bad configuration."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input; ``rows`` holds index labels of offending rows of the
    user's table (at most a few are shown in the message; ``n_rows`` counts all of them)."""

    column: str | None
    message: str
    fix: str
    rows: tuple = field(default=())
    n_rows: int = 0

    def __str__(self) -> str:
        text = (f"column '{self.column}': " if self.column is not None else "") + self.message
        if self.n_rows:
            shown = ", ".join(str(r) for r in self.rows[:MAX_ROWS_SHOWN])
            more = f" (and {self.n_rows - MAX_ROWS_SHOWN} more)" if self.n_rows > MAX_ROWS_SHOWN else ""
            text += f"\n    rows: {shown}{more}"
        return f"{text}\n    fix: {self.fix}"


def problem_at(column: str | None, message: str, fix: str, rows: Sequence = ()) -> Problem:
    """Build a :class:`Problem` for the given offending row labels."""
    rows = tuple(rows)
    return Problem(column, message, fix, rows[:MAX_ROWS_SHOWN], len(rows))


class StudyValidationError(LcbayesError, ValueError):
    """The study table or its role mapping is invalid; ``problems`` lists every issue found."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        n = len(self.problems)
        head = f"{n} problem{'s' if n != 1 else ''} in the study data:"
        super().__init__("\n".join([head] + [f"  - {p}" for p in self.problems]))


class ConfigError(LcbayesError, ValueError):
    """A roles file, spec or plan is malformed (unknown key, wrong type, missing entry)."""


class MissingExtraError(LcbayesError, ImportError):
    """A feature needs a package of an optional extra (``lcbayes[jax]``, ``lcbayes[dask]``) that is not installed."""


class LcbayesWarning(UserWarning):
    """A result is computed but may mislead: options of a declared response range that no response uses, effects that
    the study's design cannot inform. The CLI prints it as one ``warning:`` line."""


class SamplingInterrupted(KeyboardInterrupt):
    """Sampling stopped before every chain drew the requested draws (Ctrl-C, SIGTERM): the partial draws are discarded,
    so that nothing truncated is saved, reported or stored as a finished replicate. A :class:`KeyboardInterrupt`, so
    that ``except Exception`` handlers let it through."""


@contextmanager
def surfaced_interrupts(what: str) -> Iterator[None]:
    """Run the block so that a Ctrl-C (or SIGTERM turned into one) is never lost: Python cannot raise an exception out
    of a C callback (llvmlite calls back into Python while Numba compiles), so a :class:`KeyboardInterrupt` raised
    there is printed as "Exception ignored" and dropped, and the block either goes on or fails later with an unrelated
    error. Here such a dropped interrupt is recorded (not printed) and raised as a :class:`KeyboardInterrupt` naming
    ``what`` (e.g. "compiling the model") when the block ends, whether it returned or failed with another error."""
    dropped: list[BaseException] = []
    previous = sys.unraisablehook

    def record(unraisable) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            dropped.append(unraisable.exc_value)
        else:
            previous(unraisable)

    sys.unraisablehook = record
    try:
        yield
    except Exception as err:
        if dropped:
            raise KeyboardInterrupt(f"stopped while {what}") from err
        raise
    finally:
        sys.unraisablehook = previous
    if dropped:
        raise KeyboardInterrupt(f"stopped while {what}")


class UnknownMeasureError(LcbayesError, KeyError):
    """A variable or scale name (a spec's outcome, a measure, a predictor) that the study's
    roles do not define. Also a :class:`KeyError`, as a failed look-up by name."""

    def __str__(self) -> str:   # the message as is (KeyError would show it quoted)
        return str(self.args[0]) if self.args else ""


def reject_unknown(keys: Iterable, allowed: Sequence[str], where: str, fix: str = "") -> None:
    """Raise :class:`ConfigError` for the first key not in ``allowed``, suggesting the closest."""
    for key in keys:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), list(allowed), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"unknown {where} '{key}'.{hint} Valid: {', '.join(allowed)}. "
                              f"Fix: rename or remove '{key}'{fix}.")


def table(value: Any, where: str, example: str) -> Mapping:
    """``value`` if it is a table (a mapping); else a :class:`ConfigError` naming ``where`` with an ``example`` fix."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a table of key = value pairs, got {value!r}. Fix: e.g. {example}.")
    return value
