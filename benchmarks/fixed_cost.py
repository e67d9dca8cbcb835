"""Where a fit's fixed cost goes: gradlang against the hand-written loop, phase by phase.

The end-to-end figures of ``benchmarks/core.py`` and ``benchmarks/vi.py`` are a fit's fixed cost
(trace, lowering, XLA's compile) plus its steps.  This script splits the fixed cost of the same two
programs, timed in one process, the two sides alternated, the minimum of ``--repeats`` taken:

- hand-written (the loop of core.py / vi.py): trace, lower, XLA compile of its ``lax.scan``;
- gradlang: ``gradlang.compile`` (parse, check, passes), bind the data, build the solver and its
  loop, the state's shapes (``jax.eval_shape``), then trace, lower and XLA compile of the loop's
  chunk (``Loop.chunk``: the segments' scan of the solver's step, the history's records, the
  finiteness checks, the final objective), and the solver's init.

A third row compiles gradlang's own step in a plain ``lax.scan`` of the same length, with the
chunk's XLA options: the difference between its compile and the chunk's is what the chunk's
scaffolding costs.  In a run, XLA's compile of the chunk overlaps the init (on a worker thread:
``gradlang/backend/ahead.py``); the rest is on the host's critical path.

    python benchmarks/fixed_cost.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import core
import jax
import jax.numpy as jnp
import numpy as np
import optax
import vi

import gradlang
from gradlang.backend.clock import KEY_BUFFER
from gradlang.backend.keys import run_keys
from gradlang.backend.loop import Loop
from gradlang.backend.optimizer import build_optimizer
from gradlang.backend.solvers import make_solver


def _stamp(times: dict, name: str, start: float) -> float:
    now = time.perf_counter()
    times[name] = now - start
    return now


def _trace_lower_compile(times: dict, jitted, *args, **kwargs) -> dict:
    """``jitted`` traced, lowered and compiled at ``args``, each phase timed into ``times``."""
    t = time.perf_counter()
    traced = jitted.trace(*args, **kwargs)
    t = _stamp(times, "trace", t)
    lowered = traced.lower()
    t = _stamp(times, "lower", t)
    lowered.compile()
    _stamp(times, "XLA compile", t)
    return times


def hand_ridge(data: dict, steps: int) -> dict:
    """core.py's hand-written loop: its scan of ``steps`` steps, traced, lowered and compiled."""
    X, y = jnp.asarray(data["X"]), jnp.asarray(data["y"])
    opt = optax.adam(0.01)
    return _trace_lower_compile({}, core.hand_scan(opt, steps), core.hand_carry(opt, X.shape[1]), X, y)


def hand_vi(data: dict, steps: int) -> dict:
    """vi.py's hand-written loop, traced, lowered and compiled."""
    X, y = jnp.asarray(data["X"]), jnp.asarray(data["y"])
    opt = optax.adam(vi.LR)
    p = vi.hand_init(X.shape[1])
    return _trace_lower_compile({}, vi.hand_scan(opt, steps), (p, opt.init(p), jax.random.PRNGKey(0)), X, y)


def gradlang_phases(program: str, data: dict, steps: int, plain: bool = False) -> dict:
    """gradlang's fit up to its first dispatch, phase by phase; ``plain``: compile the solver's
    step in a plain ``lax.scan`` of ``steps`` steps instead of the loop's chunk."""
    times: dict = {}
    t = time.perf_counter()
    prog = gradlang.compile(program)
    t = _stamp(times, "parse, check, passes", t)
    settings = prog.ir.solve
    model, arrays = prog.bind(data)
    t = _stamp(times, "bind", t)
    solver = make_solver(model, build_optimizer(settings.optimizer, steps), settings)
    loop = Loop(model, solver, settings.log_every)
    arrays = {k: jax.device_put(v) for k, v in arrays.items()}
    key, init_key = run_keys(0)
    init = lambda d: solver.init(model.init(init_key, d), d, key)
    state = jax.eval_shape(init, arrays)
    loop.prepare(state, arrays)
    t = _stamp(times, "solver, loop, shapes", t)
    keys = jax.ShapeDtypeStruct((KEY_BUFFER, 2), np.uint32) if solver.keyed else None
    if plain:
        def scan(state, keys, data):
            def body(s, x):
                s, stats = solver.step(s, data, *x)
                return s, stats["values"]

            xs = (jnp.arange(steps, dtype=jnp.int32), keys[:steps] if keys is not None else None)
            return jax.lax.scan(body, state, xs)

        _trace_lower_compile(times, jax.jit(scan, compiler_options=loop.compiler_options), state, keys, arrays)
    else:
        _trace_lower_compile(times, loop.fast, state, np.int32(0), np.int32(0), np.int32(steps), keys, arrays,
                             loop.buffers, block=loop.segment)
    t = time.perf_counter()
    jax.block_until_ready(init(arrays))
    _stamp(times, "init", t)
    return times


def table(title: str, rows: dict[str, list[dict]]) -> None:
    phases = max((list(runs[0]) for runs in rows.values()), key=len)  # gradlang's, in the order they run
    print(title)
    print(f"{'':34s}" + "".join(f"{name:>22s}" for name in rows))
    for phase in [*phases, "total"]:
        cells = []
        for runs in rows.values():
            if phase == "total":
                cells.append(sum(min(r[p] for r in runs) for p in runs[0]))
            else:
                cells.append(min(r[phase] for r in runs) if phase in runs[0] else None)
        print(f"{phase:34s}" + "".join(f"{'-':>22s}" if c is None else f"{1e3 * c:19.1f} ms" for c in cells))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    print(f"device: {jax.devices()[0].device_kind}; the minimum of {a.repeats} alternated repeats, each phase")
    cases = [("ridge N=20000 D=50, Adam, a scan of 1000 steps (benchmarks/core.py)", core.PROGRAM,
              core.make_data(), 1000, hand_ridge),
             ("logistic VI N=20000 D=20, mean field (benchmarks/vi.py), 2000 steps", vi.PROGRAM,
              vi.make_data(), 2000, hand_vi)]
    for title, program, data, steps, hand in cases:
        contenders = {"hand-written": partial(hand, data, steps),
                      "gradlang": partial(gradlang_phases, program, data, steps),
                      "gradlang, step alone": partial(gradlang_phases, program, data, steps, plain=True)}
        for fn in contenders.values():  # warm: imports, JAX's caches of eager ops
            fn()
        runs: dict[str, list[dict]] = {name: [] for name in contenders}
        for _ in range(a.repeats):
            for name, fn in contenders.items():
                runs[name].append(fn())
        table(title, runs)
        print()


if __name__ == "__main__":
    main()
