"""Reading and writing study tables (CSV or Parquet, chosen by file extension) and the TOML
files (roles, specs) that describe them."""

from __future__ import annotations

import os
import tempfile
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from lcbayes.errors import ConfigError

FORMATS = (".csv", ".parquet", ".pq")


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError(f"'{path}': unsupported file type '{suffix}'. Fix: use one of {', '.join(FORMATS)}.")
    return "csv" if suffix == ".csv" else "parquet"


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a study table.

    For CSV files the index is the line number in the file (the header is line 1), so
    validation messages point at lines a user can find in an editor or spreadsheet.
    """
    path = Path(path)
    fmt = _format(path)
    if not path.exists():
        raise ConfigError(f"data file '{path}' not found.")
    try:
        if fmt == "csv":
            df = pd.read_csv(path)
            df.index = pd.RangeIndex(2, len(df) + 2, name="line")
            return df
        return pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise ConfigError(f"data file '{path}' is empty. Fix: export the table with a header row.") from None
    except UnicodeDecodeError:
        line, byte = _first_non_utf8(path)
        raise ConfigError(f"data file '{path}' is not UTF-8 text: byte {byte!r} on line {line}. Fix: save the file as "
                          "UTF-8 (e.g. 'CSV UTF-8' in a spreadsheet).") from None
    except pd.errors.ParserError as err:
        raise ConfigError(f"data file '{path}' has a malformed row: {err}. Fix: give every row as many fields as the "
                          "header (quote fields that contain commas).") from None
    except (OSError, ValueError) as err:        # a damaged Parquet file
        raise ConfigError(f"data file '{path}' cannot be read as {fmt}: {err}. Fix: export it again.") from None


def _first_non_utf8(path: Path) -> tuple[int, bytes]:
    """Line number (1 = the header) and value of the first byte of ``path`` that is not valid UTF-8."""
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as err:
            return number, line[err.start:err.start + 1]
    return 0, b""


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed over ``path`` when the block ends without an error (with
    the permissions a new file gets under the user's umask), removed otherwise. A reader of ``path`` therefore sees
    the earlier file or the complete new one, never a half-written one (an interrupt, a kill, a full disk)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    os.close(fd)
    partial = Path(name)
    try:
        yield partial
        os.chmod(partial, 0o666 & ~_umask())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write ``df`` as CSV or Parquet (by extension), without the index, atomically (:func:`atomic_path`); returns
    the path."""
    path = Path(path)
    fmt = _format(path)
    with atomic_path(path) as partial:
        getattr(df, f"to_{fmt}")(partial, index=False)  # to_csv or to_parquet
    return path


def read_toml(path: str | Path, what: str) -> dict[str, Any]:
    """Read a TOML file; ``what`` names it in errors (e.g. "roles file")."""
    try:
        with Path(path).open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{what} '{path}' not found.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} '{path}' is not valid TOML: {exc}") from None
