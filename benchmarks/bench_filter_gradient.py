"""Cost of one gradient of model C's log density: the Kalman filter as a PyTensor ``scan`` against the same filter
unrolled over sessions, compiled for a given PyTensor mode (JAX or NUMBA).

    .venv/bin/python benchmarks/bench_filter_gradient.py scan JAX
    .venv/bin/python benchmarks/bench_filter_gradient.py unrolled NUMBA

Builds model C on the simulated reference study (20 communities x 12 participants x 6 sessions), compiles
``logp_dlogp_function`` in the mode given (reported: compile seconds, first call included) and times 3 x 300 calls at
the initial point (ms per call). Without nutpie's per-call Python overhead: compare the modes with each other, and
run both on an otherwise idle machine, or under the same load.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np
import pytensor.tensor as pt
from bench_models import reference_study
from pymc.blocking import DictToArrayBijection

import lcbayes.models.knowledge_sharing as knowledge_sharing
from lcbayes.kalman import sharing_filter
from lcbayes.models import MODELS


def unrolled(residual: Any, error: Any, observed: Any, slope: Any, dyn: Any, shape: tuple[int, int],
             person_variance: Any = 0.0, gap: Any = None) -> tuple[Any, Any, Any]:
    """:func:`lcbayes.kalman.scan_filter`'s outputs from the filter unrolled over sessions (a Python loop)."""
    loglik, expected, variance = sharing_filter([residual[v] for v in range(4)], [error[v] for v in range(4)],
                                                [observed[v] for v in range(4)], slope, dyn, pt, shape[1],
                                                person_variance, gap)
    return loglik, pt.stack(expected, axis=1), pt.stack(variance, axis=1)


def main() -> None:
    variant, mode = sys.argv[1], sys.argv[2]
    if variant == "unrolled":
        knowledge_sharing.scan_filter = unrolled        # type: ignore[assignment]
    model = MODELS["knowledge_sharing"](reference_study(model="knowledge_sharing"), {"outcome": "sharing"}).model
    start = time.perf_counter()
    function = model.logp_dlogp_function(ravel_inputs=True, mode=mode)
    function.set_extra_values({})
    point = DictToArrayBijection.map(model.initial_point()).data
    function(point)
    print(f"{variant} {mode}: compile {time.perf_counter() - start:.1f} s, {point.size} parameters", flush=True)
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(300):
            function(point)
        print(f"  {(time.perf_counter() - start) / 300 * 1e3:.3f} ms per gradient", flush=True)
    np.testing.assert_equal(np.isfinite(function(point)[0]), True)


if __name__ == "__main__":
    main()
