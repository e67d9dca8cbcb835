"""Proximal methods: gradlang against CVXPY (its default solver) and hand-written JAX FISTA.

1. Lasso, m = 1000, n = 2000 (synthetic, seeded: a 5%-sparse truth, Gaussian A, noise 0.1;
   lam = 0.1 lam_max):  minimise 0.5 mean((A x - b)^2) + lam ||x||_1.
   * end to end, each side as a user runs it: gradlang compile + fit (JIT compilation included) with
     ``solve { method = fista; steps = 5000; tol = 1e-7 }``, CVXPY problem construction + solve;
     the gradlang objective must be within a relative 1e-4 of CVXPY's.  Target: gradlang >= 20x faster.
     Beside them hand-written JAX FISTA's first call (jit compilation + as many steps), a JAX
     program's floor, and the steps each side needs to come within 1e-4 of CVXPY's objective.
   * per iteration (compilation excluded, and each side's start: compiled runs of 1000 steps less
     runs of 500, over 500; 40000 less 20000 with --small):
     gradlang's fista against the same algorithm written by hand in JAX (FISTA with Beck & Teboulle's
     backtracking and O'Donoghue & Candès' gradient restart, a ``lax.while_loop`` in a
     ``lax.fori_loop``), and against plain constant-step FISTA (step 1/L, L by the power method;
     no objective values), the least a hand-written loop can do.  Target: within 1.05x of the first.
2. Total-variation denoising, n = 10000 (a seeded piecewise-constant signal plus noise, lam = 1):
   minimise 0.5 ||x - y||^2 + lam tv1d(x), gradlang (fista; tv1d's exact prox, Condat's algorithm)
   end to end against CVXPY (``norm1(diff(x))``).

JAX's CPU backend is started before any timing (a process pays it once, whichever side runs first).
Beside each gradlang end-to-end time (cold: every executable compiled in this process, the
headline), the warm-cache one: the same ``gradlang.compile(...).fit(...)`` in a fresh process with
the persistent compilation cache on (``gradlang.use_compilation_cache``, a temporary directory)
after a first process filled it, what a second ``gradlang run`` of the program costs.  Timed inside
each process (its interpreter and imports excluded, as for the cold figure).

Prints the times, objectives, relative gaps and ratios.

    python benchmarks/prox.py            # the full sizes above
    python benchmarks/prox.py --small    # m = 100, n = 200, TV n = 500: checks that it runs
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time

import cvxpy as cp
import jax
import jax.numpy as jnp
import numpy as np

import gradlang

LASSO = """
const lam = LAM
data A: real[m, n]
data b: real[m]
param x: real[n] = 0
minimize 0.5 * mean((A @ x - b)^2) + lam * norm1(x)
solve { method = fista; steps = STEPS; tol = TOL; log_every = 1000 }
"""

TV = """
const lam = LAM
data y: real[n]
param x: real[n] = 0
minimize 0.5 * sumsq(x - y) + lam * tv1d(x)
solve { method = fista; steps = 100; tol = 1e-7 }
"""


def lasso_data(m, n, seed=0):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(m, n))
    truth = np.where(rng.random(n) < 0.05, rng.normal(size=n), 0.0)
    b = A @ truth + 0.1 * rng.normal(size=m)
    lam = 0.1 * np.max(np.abs(A.T @ b)) / m  # lam_max = ||A'b||_inf / m: the smallest lam giving x = 0
    return A, b, float(lam)


def tv_data(n, seed=1):
    rng = np.random.default_rng(seed)
    levels = rng.normal(size=n // 500 + 1) * 2
    return np.repeat(levels, 500)[:n] + 0.5 * rng.normal(size=n)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def fastest(fn, repeat=5):
    """The least of ``repeat`` timings of ``fn`` (the one least disturbed by other work)."""
    return min(timed(fn)[0] for _ in range(repeat))


def gradlang_fit(kind, m, n, n_tv, steps):
    """The end-to-end gradlang run of ``kind`` (lasso or tv) as the cold figure times it: (seconds,
    result).  The same in this process and in a ``--warm-child``."""
    if kind == "lasso":
        A, b, lam = lasso_data(m, n)
        text = LASSO.replace("LAM", repr(lam)).replace("STEPS", str(steps)).replace("TOL", "1e-7")
        data = {"A": A.astype(np.float32), "b": b.astype(np.float32)}
    else:
        text, data = TV.replace("LAM", "1.0"), {"y": tv_data(n_tv).astype(np.float32)}
    return timed(lambda: gradlang.compile(text).fit(data=data))


def warm_cache(kind, args) -> tuple[float, float, float]:
    """(first process's seconds, second process's seconds, second's objective): ``kind``'s gradlang
    run in two fresh processes sharing a new persistent compilation cache; the first fills it (its
    time is a cold one plus the writing), the second loads every executable from it."""
    with tempfile.TemporaryDirectory(prefix="gradlang-bench-cache-") as folder:
        runs = []
        for _ in range(2):
            proc = subprocess.run([sys.executable, __file__, "--warm-child", kind, "--cache-dir", folder,
                                   "--steps", str(args.steps), *(["--small"] if args.small else [])],
                                  capture_output=True, text=True, check=True)
            runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return runs[0]["seconds"], runs[1]["seconds"], runs[1]["objective"]


def cvx_lasso(A, b, lam):
    x = cp.Variable(A.shape[1])
    problem = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(A @ x - b) / A.shape[0] + lam * cp.norm1(x)))
    problem.solve()
    return problem


def cvx_tv(y, lam):
    x = cp.Variable(len(y))
    problem = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(x - y) + lam * cp.norm1(cp.diff(x))))
    problem.solve()
    return problem


def hand_fista(A, b, lam, steps, restart=True, backtracking=True, trajectory=False):
    """FISTA written by hand in JAX for the lasso: the same steps as gradlang's fista (backtracking
    from a first-step estimate, halving until the sufficient-decrease test holds; gradient restart),
    or, with both flags off, constant step 1/L.  ``trajectory``: the objective after each step too."""
    A, b = jnp.asarray(A, jnp.float32), jnp.asarray(b, jnp.float32)
    m = A.shape[0]

    def soft(v, t):
        return v - jnp.clip(v, -t, t)

    @jax.jit
    def run(x0, A, b):  # the data as arguments, as gradlang has it (not constants folded into the program)
        def f(x):
            r = A @ x - b
            return 0.5 * jnp.mean(r * r)

        g0 = jax.grad(f)(x0)
        v = jax.random.normal(jax.random.PRNGKey(0), x0.shape)

        def power(_, v):
            w = A.T @ (A @ v) / m
            return w / jnp.linalg.norm(w)

        v = jax.lax.fori_loop(0, 50, power, v)
        lip = jnp.vdot(v, A.T @ (A @ v)) / m
        t0 = jnp.where(backtracking, 1e-4 * jnp.linalg.norm(g0) / jnp.linalg.norm(
            jax.grad(f)(x0 - 1e-4 * g0) - g0), 1.0 / lip)

        def body(_, s):
            x_prev, y, theta, t = s
            f_y, g = jax.value_and_grad(f)(y)

            def candidate(t):
                x = soft(y - t * g, t * lam)
                d = x - y
                return x, f(x) <= f_y + jnp.vdot(g, d) + jnp.vdot(d, d) / (2 * t) + 1e-6 * jnp.abs(f_y)

            if backtracking:
                def halve(c):
                    x, ok = candidate(c[1] / 2)
                    return x, c[1] / 2, ok

                x, ok = candidate(t)
                x, t, _ = jax.lax.while_loop(lambda c: ~c[2], halve, (x, t, ok))
            else:
                x = soft(y - t * g, t * lam)
            theta_next = (1 + jnp.sqrt(1 + 4 * theta**2)) / 2
            beta = (theta - 1) / theta_next
            if restart:
                again = jnp.vdot(y - x, x - x_prev) > 0
                theta_next, beta = jnp.where(again, 1.0, theta_next), jnp.where(again, 0.0, beta)
            return x, x + beta * (x - x_prev), theta_next, t

        start = (x0, x0, jnp.float32(1.0), t0.astype(jnp.float32))
        if trajectory:
            def logged(s, i):
                s = body(i, s)
                return s, f(s[0]) + lam * jnp.sum(jnp.abs(s[0]))

            (x, _, _, _), values = jax.lax.scan(logged, start, jnp.arange(steps))
            return x, values
        x, _, _, _ = jax.lax.fori_loop(0, steps, body, start)
        return x

    return lambda x0: run(x0, A, b)


def per_iteration(make, x0, steps):
    """Seconds a step of ``make(steps)``: the difference of compiled runs of 2 * steps and of steps,
    over steps (the start, a power iteration or a first-step estimate, cancels)."""
    runs = [make(k * steps) for k in (1, 2)]
    for run in runs:
        jax.block_until_ready(run(x0))     # compile
    once, twice = (fastest(lambda r=run: jax.block_until_ready(r(x0))) for run in runs)
    return (twice - once) / steps


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", action="store_true", help="m = 100, n = 200, TV n = 500 (a check that it runs)")
    parser.add_argument("--steps", type=int, default=5000, help="the lasso's step limit (it stops on tol)")
    parser.add_argument("--warm-child", choices=("lasso", "tv"), help=argparse.SUPPRESS)  # one warm-cache run
    parser.add_argument("--cache-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    m, n, n_tv = (100, 200, 500) if args.small else (1000, 2000, 10000)
    if args.warm_child:
        gradlang.use_compilation_cache(args.cache_dir)
        jax.block_until_ready(jnp.zeros(()))  # as in the cold run: the backend started before timing
        seconds, result = gradlang_fit(args.warm_child, m, n, n_tv, args.steps)
        print(json.dumps({"seconds": seconds, "objective": float(result.objective)}))
        return

    # -- 1. lasso ---------------------------------------------------------------------------------
    # JAX's CPU backend starts before any timing: a process pays it once, whichever side runs first
    # (else it is charged to gradlang's run, the first here)
    jax.block_until_ready(jnp.zeros(()))
    A, b, lam = lasso_data(m, n)
    c_time, problem = timed(lambda: cvx_lasso(A, b, lam))
    text = LASSO.replace("LAM", repr(lam)).replace("STEPS", str(args.steps)).replace("TOL", "1e-7")
    data = {"A": A.astype(np.float32), "b": b.astype(np.float32)}
    g_time, result = gradlang_fit("lasso", m, n, n_tv, args.steps)
    gap = (result.objective - problem.value) / abs(problem.value)
    print(f"lasso, m = {m}, n = {n}, lam = {lam:.4g} (0.1 lam_max)")
    print(f"  gradlang fista  {g_time:8.3f} s end to end  objective {result.objective:.8g}  ({result.steps} steps, "
          f"{int((result.params['x'] != 0).sum())} non-zeros)  [cold: every executable compiled]")
    print(f"  CVXPY           {c_time:8.3f} s end to end  objective {problem.value:.8g}  "
          f"({problem.solver_stats.solver_name}, status {problem.status})")
    print(f"  relative objective gap {gap:.2e} ({'within' if abs(gap) <= 1e-4 else 'NOT within'} 1e-4); "
          f"CVXPY / gradlang time: {c_time / g_time:.1f}x (target >= 20x)")
    report_warm("lasso", args, result.objective, c_time)
    # the floor for a JAX program: hand-written FISTA's first call, jit compilation included, the
    # same number of steps (its compile, not its run, is most of it)
    h_time, _ = timed(lambda: jax.block_until_ready(hand_fista(A, b, lam, result.steps)(jnp.zeros(n, jnp.float32))))
    print(f"  hand-written JAX FISTA {h_time:8.3f} s end to end (jit compilation + {result.steps} steps); "
          f"gradlang / hand-written: {g_time / h_time:.2f}x; CVXPY / hand-written: {c_time / h_time:.1f}x")

    # iterations: the first step within 1e-4 of CVXPY's objective, gradlang's (a run logging every
    # step) and hand-written FISTA's, against the step the tol test stopped at
    logged = gradlang.compile(text.replace(f"steps = {args.steps}; tol = 1e-7; log_every = 1000",
                                           "steps = 100; log_every = 1")).fit(data=data)
    _, hand_values = hand_fista(A, b, lam, 100, trajectory=True)(jnp.zeros(n, jnp.float32))

    def first_within(values):
        close = np.flatnonzero((np.asarray(values, np.float64) - problem.value) / abs(problem.value) <= 1e-4)
        return int(close[0]) + 1 if close.size else None

    print(f"  steps to within 1e-4 of CVXPY's objective: gradlang fista {first_within(logged.history['objective'])}, "
          f"hand-written FISTA {first_within(hand_values)}; the tol = 1e-7 test stopped gradlang at {result.steps}")

    # per iteration: compilation excluded, and a fit's fixed costs (binding the data, the result) too:
    # the difference of two compiled runs, of 2 * steps and of steps, over steps
    steps = 20000 if args.small else 500  # runs long enough (a tenth of a second or more) to time
    program = gradlang.compile(text.replace(f"steps = {args.steps}; tol = 1e-7", f"steps = {steps}"))
    for k in (1, 2):
        program.fit(data=data, steps=k * steps)  # compile
    g_run = fastest(lambda: program.fit(data=data, steps=2 * steps)) - fastest(lambda: program.fit(data=data))
    x0 = jnp.zeros(n, jnp.float32)
    t_same = per_iteration(lambda k: hand_fista(A, b, lam, k), x0, steps)
    t_plain = per_iteration(lambda k: hand_fista(A, b, lam, k, restart=False, backtracking=False), x0, steps)
    g_step = g_run / steps
    print(f"  per iteration (compiled: {2 * steps} steps less {steps}, each side): gradlang {1e6 * g_step:.1f} us, hand-written JAX FISTA "
          f"(backtracking + restart) {1e6 * t_same:.1f} us, constant-step FISTA {1e6 * t_plain:.1f} us")
    print(f"  gradlang / hand-written: {g_step / t_same:.3f}x (target <= 1.05x); "
          f"gradlang / constant-step: {g_step / t_plain:.3f}x")

    # -- 2. TV denoising --------------------------------------------------------------------------
    y = tv_data(n_tv)
    c_time, problem = timed(lambda: cvx_tv(y, 1.0))
    g_time, result = gradlang_fit("tv", m, n, n_tv, args.steps)
    gap = (result.objective - problem.value) / abs(problem.value)
    print(f"TV denoising, n = {n_tv}, lam = 1")
    print(f"  gradlang fista  {g_time:8.3f} s end to end  objective {result.objective:.8g}  ({result.steps} steps)  "
          f"[cold: every executable compiled]")
    print(f"  CVXPY           {c_time:8.3f} s end to end  objective {problem.value:.8g}  "
          f"({problem.solver_stats.solver_name}, status {problem.status})")
    print(f"  relative objective gap {gap:.2e}; CVXPY / gradlang time: {c_time / g_time:.1f}x")
    report_warm("tv", args, result.objective, c_time)


def report_warm(kind, args, cold_objective, c_time):
    """The warm-cache line under the cold headline: the second process's time, the first's."""
    first, warm, objective = warm_cache(kind, args)
    same = "same objective" if objective == cold_objective else f"objective {objective:.8g} DIFFERS"
    print(f"  gradlang, warm cache {warm:8.3f} s end to end (a fresh process loading every executable from the "
          f"persistent cache; the process that filled it took {first:.3f} s); {same}; "
          f"CVXPY / gradlang warm: {c_time / warm:.1f}x")


if __name__ == "__main__":
    main()
