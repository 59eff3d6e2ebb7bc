"""The bundled example project: a simulated study (``data``), the three model specifications (``models``) and the
report configuration of the main job (``reports``), shipped with the package; :func:`write_example` writes it to a
folder (``lcbayes example DIR``)."""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from lcbayes.errors import ConfigError

PARTS = ("data", "models", "reports")


def write_example(folder: str | Path) -> Path:
    """Write the example project to ``folder`` (new or empty): ``data/``, ``models/`` and ``reports/`` laid out as in
    the repository, so that ``lcbayes report reports/example.toml`` runs there. Returns the folder."""
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ConfigError(f"'{folder}' exists and is not an empty folder. Fix: name a new or empty folder.")
    for part in PARTS:
        source = _source(part)
        target = folder / part
        target.mkdir(parents=True, exist_ok=True)
        for entry in source.iterdir():
            if entry.is_file() and not entry.name.startswith(("_", ".")) and entry.name != "__init__.py":
                (target / entry.name).write_bytes(entry.read_bytes())
    return folder


def _source(part: str) -> Traversable:
    """Where the example's ``part`` lies: inside the installed package (a wheel), or in the source checkout's own
    folder of that name (an editable install maps it there)."""
    packaged = resources.files("lcbayes.examples").joinpath(part)
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / part
