"""Ctrl-C at a random moment (three per command, drawn from a seeded generator) of real `lcbayes fit`, `report` and
`power` processes: a non-zero exit, nothing written that `load` or `report --verify` would take for a finished result,
and a power plan that, rerun after its interrupts, gives exactly what an uninterrupted run gives.

Each command runs in a child process whose SIGINT handler is Python's default (as in a terminal: a test runner or a
script's background job may start children with SIGINT ignored)."""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tomli_w

from lcbayes.errors import ConfigError, LcbayesError, surfaced_interrupts
from lcbayes.models.spec import read_spec
from lcbayes.power import Plan, run
from lcbayes.report.verify import read_outputs

ROOT = Path(__file__).resolve().parents[1]
DATA = ["--data", str(ROOT / "data" / "example_study.csv"), "--roles", str(ROOT / "data" / "example_roles.toml")]
PLAN = ROOT / "tests" / "data" / "power_plan.toml"
# a terminal's Ctrl-C: Python's own SIGINT handler, then the command line
# (after a marker file that says the interpreter runs the command: a SIGINT while CPython itself initialises ends it
# with "Fatal Python error: init_import_site", which no program can handle)
LAUNCH = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
          "open(sys.argv[1], 'w').close(); sys.argv = ['lcbayes'] + sys.argv[2:]; import lcbayes; lcbayes.main()")


def moments(seed: int, low: float, high: float) -> list[float]:
    """Three moments (seconds after the start) drawn uniformly in [low, high]."""
    return sorted(np.random.default_rng(seed).uniform(low, high, 3).round(1).tolist())


def start(*args: str) -> subprocess.Popen:
    """The command ``lcbayes *args`` in a child process, returned once the interpreter runs it."""
    import tempfile

    marker = Path(tempfile.mkdtemp()) / "started"
    proc = subprocess.Popen([sys.executable, "-c", LAUNCH, str(marker), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 60
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    return proc


def interrupt(proc: subprocess.Popen, after: float) -> tuple[int, str]:
    """Send SIGINT ``after`` seconds from now; the exit status and output. Fails if the command ended first."""
    time.sleep(after)
    assert proc.poll() is None, f"the command ended before the interrupt:\n{proc.stdout.read()}"
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=120)
    return proc.returncode, output


@pytest.mark.review_case(72)
def test_interrupted_fits_write_no_fit(tmp_path):
    spec = read_spec(ROOT / "models" / "climate_growth.toml")
    spec["sampler"].update(chains=2, draws=5_000_000, tune=200)    # would run for hours
    (tmp_path / "spec.toml").write_text(tomli_w.dumps(spec))
    for i, after in enumerate(moments(1, 1.0, 25.0)):
        out = tmp_path / f"fits{i}"
        rc, output = interrupt(start("fit", str(tmp_path / "spec.toml"), *DATA, "--out", str(out)), after)
        assert rc == 130 and "interrupted: " in output and "Traceback" not in output, output
        for path in out.glob("*.nc") if out.exists() else []:
            from lcbayes.models import BayesModel

            with pytest.raises(LcbayesError):
                BayesModel.load(path)


def test_an_interrupt_while_the_command_line_is_built_ends_with_one_line(monkeypatch, capsys):
    """Ctrl-C after the import but before a command runs (typer reading the commands' signatures, seconds on a busy
    machine): status 130 and one line, as while a command runs (a traceback, exit -2, before)."""
    import lcbayes
    import lcbayes.cli

    def building():
        raise KeyboardInterrupt

    monkeypatch.setattr(lcbayes.cli, "app", building)
    with pytest.raises(SystemExit) as stopped:
        lcbayes.main()
    assert stopped.value.code == 130
    assert capsys.readouterr().err == "interrupted: stopped while starting\n"


def test_an_interrupt_that_typer_turns_into_status_130_still_ends_with_one_line(monkeypatch, capsys):
    """typer turns a KeyboardInterrupt while it parses the command line into a silent SystemExit(130) (typer.core);
    seen as an interrupted `lcbayes power` that printed nothing. main names it as an interrupt at the start."""
    import lcbayes
    import lcbayes.cli

    def parsing():
        raise SystemExit(130)

    def leave(code: int):
        raise SystemExit(code)

    monkeypatch.setattr(lcbayes.cli, "app", parsing)
    monkeypatch.setattr(lcbayes.cli, "interrupt_reported", False)
    monkeypatch.setattr("os._exit", leave)
    with pytest.raises(SystemExit) as stopped:
        lcbayes.main()
    assert stopped.value.code == 130
    assert capsys.readouterr().err == "interrupted: stopped while starting\n"


def test_an_interrupt_inside_a_c_callback_is_not_lost():
    """Ctrl-C while Numba compiles lands in a ctypes callback of llvmlite, where Python drops it ("Exception ignored")
    and compiling then fails with an unrelated RuntimeError (seen in CI): it must still end as an interrupt."""
    def interrupted() -> None:
        raise KeyboardInterrupt

    callback = ctypes.CFUNCTYPE(None)(interrupted)
    with pytest.raises(KeyboardInterrupt, match="stopped while compiling"):
        with surfaced_interrupts("compiling"):
            callback()                              # dropped by ctypes: the block goes on
    with pytest.raises(KeyboardInterrupt, match="stopped while compiling") as caught:
        with surfaced_interrupts("compiling"):
            callback()
            raise RuntimeError("no compiled object yet")
    assert isinstance(caught.value.__cause__, RuntimeError)
    with surfaced_interrupts("compiling"):          # nothing dropped: nothing raised
        pass


@pytest.mark.review_case(96)
def test_interrupted_reports_leave_nothing_that_verifies(tmp_path):
    config = (ROOT / "tests" / "data" / "report_small.toml").read_text().replace("draws = 300", "draws = 20000")
    config = config.replace('"../../', f'"{ROOT}/').replace('"power_summary"', f'"{ROOT}/tests/data/power_summary"')
    (tmp_path / "report.toml").write_text(config)
    for i, after in enumerate(moments(2, 1.0, 40.0)):
        out = tmp_path / f"report{i}"
        rc, output = interrupt(start("report", str(tmp_path / "report.toml"), "--out", str(out)), after)
        assert rc == 130 and "interrupted: " in output and "Traceback" not in output, output
        if out.exists():
            with pytest.raises(ConfigError):
                read_outputs(out)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "report.toml"]
    assert all(name.startswith("report") for name in leftovers), leftovers    # no half-built folder left beside


@pytest.mark.review_case(113)
def test_power_interrupted_three_times_then_rerun_equals_an_uninterrupted_run(tmp_path):
    whole = run(Plan.from_path(PLAN), str(tmp_path / "whole"), workers=1, progress=False).load()
    out = tmp_path / "interrupted"
    rng = np.random.default_rng(3)

    def finished() -> int:
        return len(list(out.glob("replicates/*/*.parquet")))

    for _ in range(3):
        proc = start("power", str(PLAN), "--out", str(out), "--workers", "1", "--quiet")
        wanted, deadline = finished() + int(rng.integers(0, 2)), time.time() + 300
        while not (out / "plan.json").exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)                # the run has started: its folder is claimed
        while finished() < wanted and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
        rc, output = interrupt(proc, float(rng.uniform(0.0, 1.0)))
        assert rc == 130 and "interrupted: " in output and "Traceback" not in output, output
        assert not (out / "summary.csv").exists()
    assert finished() < len(whole) // len(Plan.from_path(PLAN).targets), "the interrupts were to leave work undone"
    resumed = run(Plan.from_path(PLAN), str(out), workers=1, progress=False).load()
    pd.testing.assert_frame_equal(resumed.drop(columns="fit_seconds").reset_index(drop=True),
                                  whole.drop(columns="fit_seconds").reset_index(drop=True))
