"""Aggregation of Jacobian descent: gradlang.aggregate against TorchJD and against hand-written JAX.

For m x n Jacobians (m objectives, n parameters; float32, CPU), the median time of one aggregation
(Gramian, weights, wᵀJ) by

* gradlang: ``gradlang.aggregate(name, J)`` (jit-cached, called as a user calls it);
* hand-written JAX: the same computation jitted by hand (G = J Jᵀ, the entry's weighting, wᵀJ);
* TorchJD 0.18 (``UPGrad()``, ``Mean()``, ...) on the same shapes, run in TorchJD's own environment
  (``--torchjd-python``, default ``/tmp/tjd/bin/python``; see tests/fixtures/make_torchjd_fixture.py
  for how to make it) through a subprocess, skipped when absent.

Prints the figures and the ratios gradlang / TorchJD and gradlang / hand-written.  The whole
multi-task training step is not measured here (the solver that runs it is elsewhere).

    python benchmarks/jd.py [--aggregators upgrad mean] [--m 2 8 32] [--n 10000 100000 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import gradlang
from gradlang.lib.aggregators import AGGREGATORS

TORCHJD_CLASSES = {"upgrad": "UPGrad", "mean": "Mean", "dualproj": "DualProj", "mgda": "MGDA",
                   "imtl_g": "IMTLG", "aligned_mtl": "AlignedMTL", "pcgrad": "PCGrad"}

TORCH_SCRIPT = r"""
import json, sys, time, torch
from torchjd import aggregation as A
torch.manual_seed(0)
out = {}
for name, cls, m, n, reps in json.loads(sys.argv[1]):
    J = torch.randn(m, n)
    agg = getattr(A, cls)()
    agg(J)
    ts = []
    for _ in range(reps):
        t = time.perf_counter(); agg(J); ts.append(time.perf_counter() - t)
    ts.sort()
    out[f"{name}/{m}/{n}"] = ts[len(ts) // 2]
print(json.dumps(out))
"""


def median_time(fn, reps: int) -> float:
    jax.block_until_ready(fn())
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        ts.append(time.perf_counter() - t)
    return sorted(ts)[len(ts) // 2]


def hand_written(name: str):
    weighting = AGGREGATORS.get(name).value()

    @jax.jit
    def step(J):
        G = J @ J.T
        w, _ = weighting.weights(jax.lax.stop_gradient(G), (), None)
        return w @ J

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--aggregators", nargs="+", default=["upgrad", "mean"])
    ap.add_argument("--m", nargs="+", type=int, default=[2, 8, 32])
    ap.add_argument("--n", nargs="+", type=int, default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--torchjd-python", default=os.environ.get("TORCHJD_PYTHON", "/tmp/tjd/bin/python"))
    args = ap.parse_args()
    reps = {n: 30 if n <= 100_000 else 7 for n in args.n}
    jobs = [(a, TORCHJD_CLASSES[a], m, n, reps[n]) for a in args.aggregators for m in args.m for n in args.n]
    torch_times = {}
    if os.path.exists(args.torchjd_python):
        proc = subprocess.run([args.torchjd_python, "-c", TORCH_SCRIPT, json.dumps(jobs)],
                              capture_output=True, text=True, check=True)
        torch_times = json.loads(proc.stdout.strip().splitlines()[-1])
    else:
        print(f"TorchJD not found at {args.torchjd_python}: its column is left empty", file=sys.stderr)
    rng = np.random.default_rng(0)
    print(f"{'aggregator':12s} {'m':>3s} {'n':>8s} {'gradlang':>10s} {'hand JAX':>10s} {'TorchJD':>10s}"
          f" {'/TorchJD':>9s} {'/hand':>7s}")
    for name, _, m, n, r in jobs:
        J = jnp.asarray(rng.normal(size=(m, n)), jnp.float32)
        t_g = median_time(lambda: gradlang.aggregate(name, J), r)
        step = hand_written(name)
        t_h = median_time(lambda: step(J), r)
        t_t = torch_times.get(f"{name}/{m}/{n}")
        vs_t = f"{t_g / t_t:9.2f}" if t_t else f"{'-':>9s}"
        t_t_s = f"{t_t * 1e3:8.2f}ms" if t_t else f"{'-':>10s}"
        print(f"{name:12s} {m:3d} {n:8d} {t_g * 1e3:8.2f}ms {t_h * 1e3:8.2f}ms {t_t_s} {vs_t} {t_g / t_h:7.2f}")


if __name__ == "__main__":
    main()
