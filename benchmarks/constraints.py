"""Constrained problems: gradlang end to end against CVXPY (its default solver) end to end.

1. A long-only mean-variance portfolio QP over n = 1000 assets:
       minimise w' S w - gamma mu' w  subject to  sum(w) == 1, w >= 0
   The covariance is synthetic (a 20-factor model plus idiosyncratic variance, S = F F' + diag(d),
   seeded), as are the expected returns mu; no real return table of this size ships with the
   project. gradlang projects onto the simplex after each Adam step (constraints = auto).
2. Euclidean projection onto a polyhedron {x : G x <= h}, n = 200, k = 100 random rows, of a point
   far outside it (many rows active): gradlang gives G x <= h to the augmented Lagrangian (defaults).

Each side is timed end to end in a fresh process state as a user would run it: gradlang compile +
fit (JIT compilation included), CVXPY problem construction + solve. Prints the times, both
objectives, the relative objective gap (gradlang - CVXPY) / |CVXPY| and the largest violation.

    python benchmarks/constraints.py [--steps 3000]
"""

from __future__ import annotations

import argparse
import time

import cvxpy as cp
import numpy as np

import gradlang

PORTFOLIO = """
const gamma = 0.1
data S: real[n, n]
data mu: real[n]
param w: real[n] = 0.001
minimize dot(w, S @ w) - gamma * dot(mu, w)
subject to {
  budget: sum(w) == 1
  long_only: w >= 0
}
solve { optimizer = adam(lr = cosine(LR)); steps = STEPS; log_every = 500 }
"""

POLYHEDRON = """
data G: real[k, n]
data h: real[k]
data v: real[n]
param x: real[n] = 0
minimize sumsq(x - v)
subject to {
  rows: G @ x <= h
}
solve { optimizer = OPTIMIZER; steps = STEPS; log_every = 500; constraints = METHOD }
"""


# At the settings a user writes (Adam with a cosine-decayed rate, constraints = auto: the augmented
# Lagrangian at its defaults).  Before the LANCELOT-style update (rho grows only at a stationary
# primal) this run ended feasible but 25% above the optimum: rho grew on the violation left by
# Adam's jitter and amplified it into the multipliers.
POLYHEDRON_SETTINGS = [("adam(lr = cosine(LR))", "auto")]


def portfolio_data(n=1000, factors=20, seed=0):
    rng = np.random.default_rng(seed)
    F = rng.normal(size=(n, factors)) * 0.1
    d = rng.uniform(0.01, 0.05, size=n)
    S = F @ F.T + np.diag(d)
    mu = rng.normal(0.05, 0.1, size=n)
    return {"S": S, "mu": mu}


def polyhedron_data(n=200, k=100, seed=1):
    rng = np.random.default_rng(seed)
    G = rng.normal(size=(k, n))
    h = np.abs(rng.normal(size=k)) + 0.5
    v = 3.0 * rng.normal(size=n)
    return {"G": G, "h": h, "v": v}


def run_gradlang(template, data, steps, lr, optimizer="adam(lr = cosine(LR))", method="auto"):
    text = (template.replace("OPTIMIZER", optimizer).replace("METHOD", method)
            .replace("STEPS", str(steps)).replace("LR", str(lr)))
    start = time.perf_counter()
    result = gradlang.compile(text).fit(data={k: v.astype(np.float32) for k, v in data.items()})
    elapsed = time.perf_counter() - start
    return elapsed, result


def cvx_portfolio(data):
    start = time.perf_counter()
    S, mu = data["S"], data["mu"]
    w = cp.Variable(len(mu))
    problem = cp.Problem(cp.Minimize(cp.quad_form(w, cp.psd_wrap(S)) - 0.1 * mu @ w), [cp.sum(w) == 1, w >= 0])
    problem.solve()
    return time.perf_counter() - start, problem, w.value


def cvx_polyhedron(data):
    start = time.perf_counter()
    G, h, v = data["G"], data["h"], data["v"]
    x = cp.Variable(len(v))
    problem = cp.Problem(cp.Minimize(cp.sum_squares(x - v)), [G @ x <= h])
    problem.solve()
    return time.perf_counter() - start, problem, x.value


def report(name, g_time, result, c_time, problem, extra=""):
    gap = (result.objective - problem.value) / abs(problem.value)
    worst = max(c["violation"] for c in result.constraints.values())
    print(f"{name}")
    print(f"  gradlang  {g_time:7.2f} s  objective {result.objective:.8g}  ({result.steps} steps, largest violation {worst:.2e})")
    print(f"  CVXPY     {c_time:7.2f} s  objective {problem.value:.8g}  ({problem.solver_stats.solver_name}, status {problem.status})")
    print(f"  relative objective gap (gradlang - CVXPY) / |CVXPY|: {gap:.2e}{extra}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=3000)
    args = parser.parse_args()

    data = portfolio_data()
    c_time, problem, w_ref = cvx_portfolio(data)
    g_time, result = run_gradlang(PORTFOLIO, data, args.steps, 0.002)
    w = result.params["w"]
    report("portfolio QP, n = 1000 (synthetic 20-factor covariance), simplex by projection", g_time, result,
           c_time, problem, f"; max |w - w_cvxpy| {np.max(np.abs(w - w_ref)):.1e}, "
           f"{int((w > 1e-6).sum())} / {int((w_ref > 1e-6).sum())} assets held")

    data = polyhedron_data()
    c_time, problem, x_ref = cvx_polyhedron(data)
    active = int((data["G"] @ x_ref > data["h"] - 1e-6).sum())
    for optimizer, method in POLYHEDRON_SETTINGS:
        g_time, result = run_gradlang(POLYHEDRON, data, args.steps, 0.05, optimizer, method)
        shown = optimizer.replace("LR", "0.05")
        report(f"projection onto a polyhedron, n = 200, k = 100 ({active} rows active): {shown}, "
               f"constraints = {method}", g_time, result, c_time, problem,
               f"; max |x - x_cvxpy| {np.max(np.abs(result.params['x'] - x_ref)):.1e}")


if __name__ == "__main__":
    main()
