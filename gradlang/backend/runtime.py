"""The optimisation loop's host side: any solver, run in chunks; the host looks by the clock.

The device runs chunks of the solver's steps (``loop``: segments of ``log_every`` steps, the
history recorded on device).  The host sizes chunks by the clock (``clock.Clock``: about three
looks a second) and dispatches chunk i+1 before it reads chunk i (JAX dispatches
asynchronously), so the device never waits for the progress bar, the history or a checkpoint.
XLA compiles the loop's executables on a worker thread while the host initialises the solver
(``Loop.compile_ahead``, ``ahead``), so a solver's own start-up compiles and the loop's overlap.

When a chunk was not finite, the chunk dispatched after it is dropped and it is replayed from its
start (same keys, same minibatches) with a guarded step that refuses the first non-finite step,
so a run that fails at step 5000 returns the state after step 4999.  Step t draws from
``fold_in(key, t)`` whatever the chunks around it, so a run is bit-identical however it was
chunked, interrupted or resumed from a checkpoint.  The runtime knows nothing of the method: not
the estimators' state, not how several objectives are aggregated, not the sign of a maximised one.
"""


from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

import jax
import numpy as np

from ..errors import RuntimeError_
from ..gc_pause import paused
from .build import Model
from .clock import Clock
from .estimate import estimate
from .keys import prng_key, run_keys
from .loop import Loop, chunk_keys
from .result import Result

COMPILE_AHEAD = True    # XLA compiles the loop on a worker thread while the host initialises (Loop.compile_ahead)


class NonFiniteError(RuntimeError_):
    """The objective or an update became NaN/inf; ``.result`` holds the last finite state."""

    result: Result | None = None


def _append(history: dict, rows: np.ndarray, records: dict, names: list[str]) -> None:
    """A chunk's filled records onto the history: ``rows``, its filled rows (step, aggregate,
    objectives), and ``records``, its record buffers (extras, reports: read for the rows' count)."""
    n = len(rows)
    if n <= 0:
        return
    history["step"] += rows[:, 0].view(np.int32).tolist()
    history["objective"] += rows[:, 1].astype(float).tolist()
    for j, name in enumerate(names):
        history["objectives"][name] += rows[:, 2 + j].astype(float).tolist()
    for name, v in records.get("extras", {}).items():
        history.setdefault(name, [])
        history[name] += [x.tolist() for x in np.asarray(v)[:n]]
    for name, v in records.get("reports", {}).items():
        history["reports"][name] += [x.tolist() for x in np.asarray(v)[:n]]


def takes_objectives(progress: Callable) -> bool:
    """Whether a progress callback takes a fourth argument: the objectives by name (several
    objectives only), after ``(done, total, objective)``; a three-argument callback still works."""
    import inspect

    try:
        params = list(inspect.signature(progress).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return any(p.kind == p.VAR_POSITIONAL for p in params) or len(positional) >= 4


def run(model: Model, solver, data: dict, *, steps: int, seed: int, log_every: int,
        progress: Callable | None = None, loop: Loop | None = None, checkpoint=None, resume=None) -> Result:
    """Run ``solver`` on ``model`` for ``steps`` steps (fewer when it converges).  ``loop``, when
    given, is this program's compiled loop from an earlier fit with the same dims and settings;
    ``checkpoint`` (a ``checkpoint.Checkpoints``) receives the state between chunks; ``resume``
    (one too) supplies the state to continue from."""
    start = time.perf_counter()
    collector = paused()  # until the first chunk is dispatched: tracing sets off full collections
    try:
        data = {k: jax.device_put(v) for k, v in data.items()}  # jnp.asarray compiles a copy per shape
        key, init_key = run_keys(seed)
        loop = loop or Loop(model, solver, log_every)
        init = lambda data: solver.init(model.init(init_key, data), data, key)
        # what the ahead compile traces for the state's shapes: the solver's placeholder state
        # where it has one (its init is then traced while XLA compiles the loop, not before)
        shaped = (lambda data: solver.state_like(model.init(init_key, data), data)) \
            if hasattr(solver, "state_like") else init
        fresh = loop.capacity is None  # a loop kept from an earlier fit has its executables already
        ahead = (loop.compile_ahead(shaped, data, key, steps)
                 if COMPILE_AHEAD and fresh and resume is None and steps > 0 else None)
    except BaseException:
        collector.resume()
        raise
    try:  # an error on the way still waits for the worker (a process must not exit in its compile)
        state = init(data)
        loop.prepare(state, data)
        names = [o.name for o in model.program.objectives]
        history: dict = {"step": [], "objective": [], "objectives": {n: [] for n in names},
                         "reports": {n: [] for n in model.program.reports}}
        done, converged_at = 0, None
        if resume is not None:
            state, done, history, converged_at = resume.load(state)
        clock, total = Clock(loop.segment, loop.capacity, steps), np.int32(steps)
        by_name = progress is not None and takes_objectives(progress)
        tail, failed_at, interrupted, final = None, None, False, None

        def dispatch(state, t0: int):
            block, t1 = clock.plan(t0)
            keys = chunk_keys(key, t0, t1 - t0) if solver.keyed else None
            out = loop.chunk(state, np.int32(t0), np.int32(t1), total, keys, data, block=block)
            return state, t0, t1, block, keys, out, time.perf_counter()

        if ahead is not None:
            ahead.wait(ahead.loop_executables)
        try:
            pending = dispatch(state, done) if done < steps and converged_at is None else None
            collector.resume()  # the loop (and a progress callback's garbage) collects as usual
            looked = time.perf_counter()
            while pending is not None:
                before, t0, t1, block, keys, out, sent = pending
                following = dispatch(out[0], t1) if t1 < steps else None  # before reading this one
                guarded = int(out[2]) >= 0
                if guarded:  # not finite: replay from the chunk's start, refusing the bad step
                    following = None
                    out = loop.replay(before, np.int32(t0), np.int32(t1), total, keys, data, block=block)
                    failed_at = int(out[2]) if int(out[2]) >= 0 else None
                got = loop.read(out, t0, block, guarded)
                now = time.perf_counter()
                clock.observe(got.t - t0, now - max(sent, looked))
                looked = now
                _append(history, got.rows, got.records, names)
                state, done = got.state, got.t
                if got.t > t0:  # the parameters at ``state`` (a chunk that took no step, its solver
                    # done or its first step refused, returns its start: the last chunk's), and the
                    # final objectives so far and their aggregate (a Monte-Carlo objective's: its
                    # last step's)
                    final, tail = got.params, got.tail
                if progress and got.t > t0:
                    named = (dict(zip(names, map(float, got.last))),) if len(names) > 1 and by_name else ()
                    progress(done, steps, got.last_aggregate, *named)
                t = got.t
                if failed_at is not None:
                    break
                if t < t1:  # the solver's own test held
                    converged_at = done
                if checkpoint is not None:
                    checkpoint.save(state, done, history, converged_at, final=False)
                if converged_at is not None:
                    break
                pending = following if following is not None or t >= steps else dispatch(state, done)
        except KeyboardInterrupt:
            interrupted = True
        if checkpoint is not None and failed_at is None:
            checkpoint.save(state, done, history, converged_at, final=True)
        if ahead is not None:
            ahead.wait()
        return _result(model, solver, loop, state, data, seed, history, done, tail, failed_at, converged_at,
                       interrupted, start, final)
    finally:
        collector.resume()
        if ahead is not None:
            ahead.wait()


def _result(model, solver, loop, state, data, seed, history, done, tail, failed_at, converged_at,
            interrupted, start, final=None) -> Result:
    """The run's Result; ``final``: the parameters at ``state`` and their constrained values, as the
    last chunk returned them (None when no chunk ran, or where they are the state's own arrays:
    computed here, a selection of the state's arrays in the latter case)."""
    names = [o.name for o in model.program.objectives]
    if hasattr(solver, "finish"):  # the solver's own look at its final state (its warnings)
        solver.finish(state)
    if final is None:
        final = (u := solver.params(state), model.constrain(u))
    u_final, constrained = final
    reports = loop.reports(u_final, data) if model.program.reports else {}
    estimate_fn = None
    m = len(names)
    if model.stochastic and tail is not None and failed_at is None:
        # a Monte-Carlo objective: its last step's value until the estimate at the final
        # parameters is asked for (it compiles an evaluation the run itself does not need)
        values, total = tail[:m], tail[m]
        estimate_fn = partial(estimate, model, solver, u_final, data, seed)
    elif not model.stochastic and tail is not None:  # the last chunk's, at this state
        values, total = tail[:m], tail[m]
    else:
        values, total = loop.objectives(u_final, data, prng_key(seed + 1) if model.stochastic else None)
    result = Result(
        params={k: jax.tree.map(np.asarray, v) for k, v in constrained.items()},
        _objective=float(total), _objectives={n: float(v) for n, v in zip(names, np.asarray(values))},
        estimate_fn=estimate_fn,
        reports={k: np.asarray(v) for k, v in reports.items()},
        history=history, steps=done, seed=seed, seconds=time.perf_counter() - start,
        unconstrained={k: jax.tree.map(np.asarray, v) for k, v in u_final.items()},
        converged=converged_at is not None, converged_at=converged_at,
    )
    if getattr(solver, "constrained", False):
        result.constraints = solver.constraint_report(state, data)
    if len(names) > 1 and failed_at is None:
        from .solvers.conflict import report
        if model.program.lowers:  # the objectives' hypergradients, through the lower solution
            from .solvers.hypergradient import conflict_report as report

        result.conflicts_fn = partial(report, model, u_final, data, seed + 3)
    if model.ppl is not None and model.program.guide is not None:
        from .posterior import sample_guide, summarize

        # computed when first asked for (the API may never need it; --out does)
        result.posterior_fn = lambda: summarize(sample_guide(model, u_final, data, 1000, seed + 2))
        if not model.program.guide.stmts or not any(  # k̂ weighs sampled draws: not for an enumerated guide
                getattr(st, "via", None) is not None and st.via.value == "enum" for st in model.program.guide.stmts):
            from .psis import diagnostics

            result.diagnostics_fn = lambda: diagnostics(model, u_final, data, seed + 4)
            from .psis_posterior import psis_posterior

            result.psis_posterior_fn = lambda: psis_posterior(model, u_final, data, seed + 5)
    if failed_at is not None:
        err = NonFiniteError(f"the objective or its update became non-finite at step {failed_at + 1}",
                             model.program.objectives[0].span,
                             f"the result keeps the parameters after step {failed_at}, the last finite ones; "
                             "try a smaller learning rate, or look for log/sqrt of non-positive values")
        err.result = result
        raise err
    if interrupted:
        result.history["interrupted"] = True
    return result
