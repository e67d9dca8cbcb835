"""Per-step cost of a compiled gradlang program against the same loop hand-written in JAX + Optax.

Ridge regression, N=20000, D=50, Adam.  Each side is timed end to end (trace and compile included:
the hand-written loop is a fresh ``jax.jit`` each call, gradlang a fresh ``gradlang.compile(PROGRAM)``
each call, so neither reuses an executable from the call before) at two step counts; the per-step
time is the difference divided by the difference in steps, so compile cancels.
Prints the figures and the ratio gradlang / hand-written (the contract: <= 1.02).  The program is
written as a user writes it (default log_every = 100: the history records every 100 steps).
gradlang compiles its loop with the machine's XLA options (512-bit vectors on a CPU that runs them
at full speed: gradlang/backend/compile_options.py, ``wide_vectors``), the hand-written loop with
JAX's defaults, as each is written; the second line printed names the options.

    python benchmarks/core.py [--steps-small 1000 --steps-large 11000 --repeats 7]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import gradlang
from gradlang.backend.compile_options import wide_vectors

PROGRAM = """
const lam = 0.01
data X: real[N, D]
data y: real[N]
param w: real[D] = 0
param b: real = 0
minimize mean((X @ w + b - y)^2) + lam * sumsq(w)
solve { optimizer = adam(lr = 0.01); steps = 1000 }
"""


def make_data(n=20000, d=50, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = (X @ rng.normal(size=d) + 0.5 * rng.normal(size=n)).astype(np.float32)
    return {"X": X, "y": y}


def hand_loss(p, X, y):
    return jnp.mean((X @ p["w"] + p["b"] - y) ** 2) + 0.01 * jnp.sum(p["w"] ** 2)


def hand_scan(opt, n: int):
    """A fresh ``jax.jit`` of ``n`` hand-written steps (value_and_grad, the optax update) in a
    ``lax.scan``: each call traces and compiles anew."""
    def loop(carry, X, y):
        def step(carry, _):
            p, s = carry
            value, g = jax.value_and_grad(hand_loss)(p, X, y)
            updates, s = opt.update(g, s, p)
            return (optax.apply_updates(p, updates), s), value

        return jax.lax.scan(step, carry, None, length=n)

    return jax.jit(loop)


def hand_carry(opt, d: int):
    params = {"w": jnp.zeros(d), "b": jnp.zeros(())}
    return params, opt.init(params)


def hand_written(data, steps: int) -> float:
    """The same loop by hand: value_and_grad, optax.adam, lax.scan over chunks of 1000 steps."""
    start = time.perf_counter()
    X, y = jnp.asarray(data["X"]), jnp.asarray(data["y"])
    opt = optax.adam(0.01)
    chunk, carry = hand_scan(opt, 1000), hand_carry(opt, X.shape[1])
    for _ in range(steps // 1000):
        carry, values = chunk(carry, X, y)
        float(values[-1])  # the host looks at the objective once a chunk, as gradlang does
    jax.block_until_ready(carry)
    return time.perf_counter() - start


def compiled(data, steps: int) -> float:
    """The program as a user runs it: compiled and fitted (its loop traced and compiled again)."""
    start = time.perf_counter()
    gradlang.compile(PROGRAM).fit(data=data, steps=steps)
    return time.perf_counter() - start


def measure(fns: dict, small: int, large: int, repeats: int) -> dict:
    """Interleaved timings (each repeat runs every contender at both step counts, so drift in the
    machine's speed hits all alike); per step = (min at large - min at small) / (large - small),
    the minimum being the least disturbed run."""
    times = {name: {small: [], large: []} for name in fns}
    for _ in range(repeats):
        for steps in (small, large):
            for name, fn in fns.items():
                times[name][steps].append(fn(steps))
    out = {}
    for name, t in times.items():
        paired = sorted((b - a) / (large - small) for a, b in zip(t[small], t[large]))
        out[name] = ((min(t[large]) - min(t[small])) / (large - small), min(t[large]), paired[len(paired) // 2])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps-small", type=int, default=1000)
    ap.add_argument("--steps-large", type=int, default=11000)
    ap.add_argument("--repeats", type=int, default=7)
    a = ap.parse_args()
    data = make_data()
    fns = {"hand-written JAX+Optax": lambda s: hand_written(data, s),
           "gradlang": lambda s: compiled(data, s)}
    for fn in fns.values():
        fn(1000)  # warm imports and caches
    res = measure(fns, a.steps_small, a.steps_large, a.repeats)
    print(f"device: {jax.devices()[0].device_kind}  ridge N=20000 D=50 adam, min of {a.repeats} interleaved repeats")
    print(f"XLA options of gradlang's loop: {wide_vectors() or 'none'} (the machine's: "
          "gradlang/backend/compile_options.py); the hand-written loop: JAX's defaults")
    print(f"{'':24s}{'per step, min (us)':>20s}{'per step, median (us)':>24s}"
          f"{'end to end, ' + str(a.steps_large) + ' steps (s)':>34s}")
    for name, (step, total, median) in res.items():
        print(f"{name:24s}{step * 1e6:20.2f}{median * 1e6:24.2f}{total:34.3f}")
    (ours, ours_total, ours_med), (ref, ref_total, ref_med) = res["gradlang"], res["hand-written JAX+Optax"]
    print(f"ratio gradlang / hand-written: per step {ours / ref:.3f} (min), {ours_med / ref_med:.3f} (median); "
          f"end to end {ours_total / ref_total:.3f}")


if __name__ == "__main__":
    main()
