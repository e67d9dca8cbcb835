"""Bilevel programs: the cost of a hypergradient, and gradlang against the same method in JAX.

Two problems at the settings a user writes (``bilevel = implicit``, the inner solve in the block):

1. ``ridge``: tuning a ridge penalty ``log_lam`` on held-out rows (synthetic regression, seeded:
   ``n`` training rows, ``D`` features, ``4n`` held out); the lower level (``D`` unknowns, at most
   500) takes ``implicit``'s direct solve (Lineax LU of the materialised lower Hessian).
2. ``cleaning``: data hyper-cleaning on the digits (sklearn's, shipped in ``examples/data``): a
   weight per training digit (``n`` of them, 40% of labels corrupted), a softmax regression
   lower level (650 unknowns: ``implicit(solver = cg, iters = 50)``).

For each it prints

* ``hypergradient / lower solve``: the time of one upper step (warm-started lower solve + the
  hypergradient) less the lower solve alone, over the lower solve alone (gradlang's own
  direction and solve, compiled, timed over repeated calls);
* ``gradlang / JAX``: seconds per upper step of ``gradlang fit`` (compiled: the least of three
  later runs) over a hand-written JAX loop doing the same thing: the same inner gradient steps
  (``lax.fori_loop``) warm-started, the same implicit hypergradient (``jnp.linalg.solve`` of the
  Hessian from ``jax.hessian``, or ``jax.scipy.sparse.linalg.cg`` with the same iterations on
  Hessian-vector products), the same Optax Adam upper step, all in one ``lax.scan`` (the least of
  three runs);
* both final upper objectives (they agree: the same algorithm).

    python benchmarks/bilevel.py            # small sizes (a check that it runs)
    python benchmarks/bilevel.py --full     # the sizes to report (n = 1000, D = 200; n = 500 digits)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import gradlang
from gradlang.backend.solvers.gradient import direction_of
from gradlang.backend.solvers.hypergradient import Problem

ROOT = Path(__file__).resolve().parent.parent

RIDGE = """
data Xtr: real[N, D]; data ytr: real[N]; data Xval: real[M, D]; data yval: real[M]
param log_lam: real = 0
lower fit {
  param w: real[D] = 0
  minimize mean((Xtr @ w - ytr)^2) + exp(log_lam) * sumsq(w)
  solve { optimizer = sgd(lr = LOWER_LR); steps = INNER }
}
minimize mean((Xval @ fit.w - yval)^2)
solve { optimizer = adam(lr = 0.05); steps = STEPS; bilevel = implicit; log_every = STEPS }
"""

CLEANING = """
data Xtr: real[N, D]; data Ytr: real[N, K]; data Xval: real[M, D]; data Yval: real[M, K]
param u: real[N] = 0
lower fit {
  param W: real[D, K] = 0
  param b: real[K] = 0
  minimize mean(sigmoid(u) * -sum(Ytr * log_softmax(Xtr @ W + b), 1)) + 0.01 * (sumsq(W) + sumsq(b))
  solve { optimizer = sgd(lr = 0.2); steps = INNER }
}
minimize mean(-sum(Yval * log_softmax(Xval @ fit.W + fit.b), 1))
solve { optimizer = adam(lr = 0.1); steps = STEPS; bilevel = implicit(solver = cg, iters = 50); log_every = STEPS }
"""


def ridge_data(n, dim, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=dim) / np.sqrt(dim)
    X = rng.normal(size=(5 * n, dim))
    y = X @ w + rng.normal(size=5 * n)
    return {"Xtr": X[:n], "ytr": y[:n], "Xval": X[n:], "yval": y[n:]}


def cleaning_data(n, seed=0):
    d = np.load(ROOT / "examples" / "data" / "digits.npz")
    X, labels = d["X"], d["y"]
    rng = np.random.default_rng(seed)
    noisy = labels[:n].copy()
    flip = rng.random(n) < 0.4
    noisy[flip] = (noisy[flip] + rng.integers(1, 10, flip.sum())) % 10
    m = min(3 * n, len(labels) - n)
    return {"Xtr": X[:n], "Ytr": np.eye(10)[noisy], "Xval": X[n:n + m], "Yval": np.eye(10)[labels[n:n + m]]}


def timed(fn, *args, seconds=1.0):
    """Seconds of the fastest call, compiled, over ``seconds`` of calls (a busy machine only adds)."""
    jax.block_until_ready(fn(*args))  # compile
    best, start = np.inf, time.perf_counter()
    while time.perf_counter() - start < seconds:
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t)
    return best


def hypergradient_cost(prog, data):
    """(upper step − lower solve) / lower solve, gradlang's compiled direction and inner solve."""
    model, arrays = prog.bind(data)
    direction = direction_of(model)
    data = {k: jnp.asarray(v) for k, v in arrays.items()}
    u = model.init(jax.random.PRNGKey(0), data)
    est = direction.init(u, data, {})
    step = jax.jit(lambda est: direction(u, data, None, est)[2])
    problem = Problem(direction, data, None, {})
    y0 = est["bilevel"]["y"]
    solve = jax.jit(lambda y: problem.solve(lambda v: problem.lower(u, v), y)[0])
    t_step, t_solve = timed(step, est), timed(solve, y0)
    return (t_step - t_solve) / t_solve, t_step, t_solve


REPEAT = 3  # each timing is the least of this many runs (a busy machine only adds time)


def gradlang_per_step(prog, data, steps):
    prog.fit(data=data)  # compiles
    best = np.inf
    for _ in range(REPEAT):
        start = time.perf_counter()
        r = prog.fit(data=data)
        best = min(best, time.perf_counter() - start)
    return best / steps, r.objective


def jax_loop(lower, upper, x0, y0, inner, lower_lr, upper_lr, steps, linear_solve):
    """The implicit-hypergradient bilevel loop written by hand: warm-started inner gradient steps,
    v = H⁻¹ ∇_y F, g = ∇_x F − ∇_x <∇_y G, v>, an Adam step; one lax.scan over the upper steps."""
    opt = optax.adam(upper_lr)

    def upper_step(carry, _):
        x, y, s = carry
        y = jax.lax.fori_loop(0, inner, lambda _, v: jax.tree.map(
            lambda a, g: a - lower_lr * g, v, jax.grad(lower, argnums=1)(x, v)), y)
        fx, fy = jax.grad(upper, argnums=(0, 1))(x, y)
        v = linear_solve(lambda w: jax.jvp(lambda z: jax.grad(lower, argnums=1)(x, z), (y,), (w,))[1], fy, x, y)
        cross = jax.grad(lambda x_: sum(jnp.vdot(a, b) for a, b in zip(
            jax.tree.leaves(jax.grad(lower, argnums=1)(x_, y)), jax.tree.leaves(v))))(x)
        g = jax.tree.map(lambda a, b: a - b, fx, cross)
        updates, s = opt.update(g, s, x)
        return (optax.apply_updates(x, updates), y, s), None

    @jax.jit
    def run(x, y):
        (x, y, _), _ = jax.lax.scan(upper_step, (x, y, opt.init(x)), None, length=steps)
        return x, y, upper(x, y)

    jax.block_until_ready(run(x0, y0))  # compiles
    best = np.inf
    for _ in range(REPEAT):
        start = time.perf_counter()
        x, y, value = jax.block_until_ready(run(x0, y0))
        best = min(best, time.perf_counter() - start)
    return best / steps, float(value)


def direct_solve(lower):
    def solve(H, b, x, y):
        matrix = jax.hessian(lower, argnums=1)(x, y)
        return jnp.linalg.solve(matrix, b)
    return solve


def cg_solve(iters):
    def solve(H, b, x, y):
        return jax.scipy.sparse.linalg.cg(H, b, maxiter=iters, tol=1e-6)[0]
    return solve


def ridge_case(n, dim, inner, steps):
    data = ridge_data(n, dim)
    lr = 0.5 / np.linalg.eigvalsh(2 * data["Xtr"].T @ data["Xtr"] / n).max()
    text = (RIDGE.replace("LOWER_LR", f"{lr:.6g}").replace("INNER", str(inner)).replace("STEPS", str(steps)))
    prog = gradlang.compile(text)
    d = {k: jnp.asarray(v, jnp.float32) for k, v in data.items()}

    def lower(x, w):
        return jnp.mean((d["Xtr"] @ w - d["ytr"]) ** 2) + jnp.exp(x) * jnp.sum(w**2)

    def upper(x, w):
        return jnp.mean((d["Xval"] @ w - d["yval"]) ** 2)

    jax_step, jax_value = jax_loop(lower, upper, jnp.float32(0.0), jnp.zeros(dim, jnp.float32), inner,
                                   float(f"{lr:.6g}"), 0.05, steps, direct_solve(lower))
    return prog, data, jax_step, jax_value


def cleaning_case(n, inner, steps):
    data = cleaning_data(n)
    prog = gradlang.compile(CLEANING.replace("INNER", str(inner)).replace("STEPS", str(steps)))
    d = {k: jnp.asarray(v, jnp.float32) for k, v in data.items()}

    def lower(u, p):
        W, b = p
        ce = -jnp.sum(d["Ytr"] * jax.nn.log_softmax(d["Xtr"] @ W + b), 1)
        return jnp.mean(jax.nn.sigmoid(u) * ce) + 0.01 * (jnp.sum(W**2) + jnp.sum(b**2))

    def upper(u, p):
        W, b = p
        return jnp.mean(-jnp.sum(d["Yval"] * jax.nn.log_softmax(d["Xval"] @ W + b), 1))

    y0 = (jnp.zeros((64, 10), jnp.float32), jnp.zeros(10, jnp.float32))
    jax_step, jax_value = jax_loop(lower, upper, jnp.zeros(n, jnp.float32), y0, inner, 0.2, 0.1, steps, cg_solve(50))
    return prog, data, jax_step, jax_value


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the sizes to report")
    args = parser.parse_known_args()[0]
    parser.add_argument("--medium", action="store_true", help=argparse.SUPPRESS)
    if parser.parse_known_args()[0].medium:
        cases = [("ridge", lambda: ridge_case(300, 100, 100, 100)), ("cleaning", lambda: cleaning_case(300, 100, 100))]
    elif args.full:
        cases = [("ridge", lambda: ridge_case(1000, 200, 100, 200)), ("cleaning", lambda: cleaning_case(500, 100, 200))]
    else:
        cases = [("ridge", lambda: ridge_case(100, 20, 50, 50)), ("cleaning", lambda: cleaning_case(100, 50, 50))]
    print(f"{'problem':10s} {'hypergrad/lower solve':>22s} {'gradlang s/step':>16s} {'JAX s/step':>12s} "
          f"{'gradlang/JAX':>13s} {'objective gradlang':>19s} {'objective JAX':>14s}")
    for name, case in cases:
        prog, data, jax_step, jax_value = case()
        ratio, _, _ = hypergradient_cost(prog, data)
        steps = prog.ir.solve.steps
        ours, value = gradlang_per_step(prog, data, steps)
        print(f"{name:10s} {ratio:22.2f} {ours:16.3e} {jax_step:12.3e} {ours / jax_step:13.2f} {value:19.6f} "
              f"{jax_value:14.6f}")


if __name__ == "__main__":
    main()
