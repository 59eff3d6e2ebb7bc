"""Same-run speed comparison of two revisions of lcbayes (before and after a change).

Run from the repository root (about 2 x the time of one default fit per model and run):

    .venv/bin/python benchmarks/compare_revisions.py --base 5ea97a3 [--runs 2] [--warm] [--vary-seed] [--same-data] \
        [--models climate_growth consensus_emergence knowledge_sharing] [--base-python PATH] [--out FILE]

The base revision is checked out into a temporary git worktree; for each model and run, the
default-settings row of ``benchmarks/bench_models.py`` (this checkout's script) is measured
with the base's ``lcbayes`` and with this working tree's, interleaved (alternating which goes
first, so that neither always meets a cold compile cache), on the same data.
It prints the medians per revision and the ratio of min-ESS/s (with compilation), and
writes them to ``--out`` (default ``benchmarks/results_compare_revisions.json``). ``--base-python`` runs the base
revision with another interpreter (its own virtual environment: e.g. the stack before a dependency move).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks" / "bench_models.py"
KEYS = ("wall_with_compile_s", "sampling_s", "min_ess_bulk", "ess_per_s_with_compile", "ess_per_s_sampling")


def measure(source: Path, model: str, out: Path, seed: int = 1, data: tuple[Path, Path] | None = None,
            python: str = sys.executable) -> dict:
    """The default-settings row of bench_models.py with the lcbayes found in ``source`` (on ``data``, a study table
    and roles, if given; else on the reference study that revision's simulator makes), run by ``python``."""
    env = {**os.environ, "PYTHONPATH": str(source)}
    extra = ["--data", str(data[0]), str(data[1])] if data else []
    subprocess.run([python, str(BENCH), "--model", model, "--default-only", "--out", str(out),
                    "--seed", str(seed), *extra],
                   check=True, env=env, cwd=source, stdout=subprocess.DEVNULL)
    return next(r for r in json.loads(out.read_text())["rows"] if r["row"] == "lcbayes default settings")


def write_reference(model: str, seed: int, folder: Path) -> tuple[Path, Path]:
    """This checkout's reference study for ``model`` as a CSV and roles file in ``folder``."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_models import reference_simulation

    sim = reference_simulation(seed=seed, model=model)
    table, roles = folder / f"{model}_{seed}.csv", folder / f"{model}_{seed}_roles.toml"
    sim.table.to_csv(table, index=False)
    sim.roles.to_toml(roles)
    return table, roles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="git revision to compare against")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results_compare_revisions.json")
    parser.add_argument("--warm", action="store_true", help="fit each revision once, unrecorded, first "
                        "(so that no recorded fit pays for a cold compile cache)")
    parser.add_argument("--vary-seed", action="store_true", help="run r uses data and sampler seed r + 1 "
                        "(both revisions alike), so that the medians are not those of one dataset")
    parser.add_argument("--models", nargs="+", default=["climate_growth", "consensus_emergence", "knowledge_sharing"])
    parser.add_argument("--base-python", default=sys.executable, help="interpreter (virtual environment) that runs "
                        "the base revision (default: this one)")
    parser.add_argument("--same-data", action="store_true", help="both revisions fit the reference study simulated "
                        "by this checkout (written to a CSV), not each its own simulator's")
    args = parser.parse_args()
    results: dict[str, dict[str, list[dict]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", str(base), args.base], check=True, cwd=ROOT,
                       stdout=subprocess.DEVNULL)
        try:
            for model in args.models:
                results[model] = {"base": [], "this": []}
                python = {base: args.base_python, ROOT: sys.executable}
                for source in (base, ROOT) if args.warm else ():
                    measure(source, model, Path(tmp) / "warm.json", python=python[source])
                for run in range(args.runs):
                    seed = run + 1 if args.vary_seed else 1
                    data = write_reference(model, seed, Path(tmp)) if args.same_data else None
                    pair = [("base", base), ("this", ROOT)]
                    for label, source in pair if run % 2 == 0 else pair[::-1]:   # alternate who goes first
                        row = measure(source, model, Path(tmp) / f"{model}_{label}_{run}.json", seed=seed,
                                      data=data, python=python[source])
                        results[model][label].append(row)
                        print(model, label, run, {k: round(row[k], 1) for k in KEYS}, flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT)
    summary = {model: {label: {k: statistics.median(r[k] for r in rows) for k in KEYS}
                       for label, rows in by.items()} for model, by in results.items()}
    for model, s in summary.items():
        ratio = s["this"]["ess_per_s_with_compile"] / s["base"]["ess_per_s_with_compile"]
        print(f"{model}: min-ESS/s with compile {s['base']['ess_per_s_with_compile']:.1f} (base) -> "
              f"{s['this']['ess_per_s_with_compile']:.1f} (this), ratio {ratio:.2f}")
    pythons = {label: subprocess.run([python, "-c", "import sys; print(sys.version.split()[0])"], capture_output=True,
                                     text=True).stdout.strip() for label, python in (("base", args.base_python),
                                                                                     ("this", sys.executable))}
    args.out.write_text(json.dumps({"base": args.base, "python": pythons, "runs": results, "medians": summary},
                                   indent=1))


if __name__ == "__main__":
    main()
