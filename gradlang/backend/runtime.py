"""The optimisation loop: ``lax.scan`` over chunks of steps on device, the host in between.

Between chunks the host updates the progress bar, appends to the history and evaluates reports
every ``log_every`` steps, and checks one flag: were the chunk's objectives and final parameters
finite?  The hot loop is exactly the hand-written one.  When a chunk went non-finite it is replayed
from its start (same keys, same minibatches) with a guarded step that refuses the first non-finite
update, so a run that fails at step 5000 returns the parameters after step 4999.
"""

from __future__ import annotations

import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..errors import RuntimeError_
from ..lib.optimizers import final_params
from .build import Model, batch_axis
from .result import Result


class NonFiniteError(RuntimeError_):
    """The objective or an update became NaN/inf; ``.result`` holds the last finite state."""

    result: Result | None = None


def make_step(model: Model, opt, data: dict, batched: list[str], n_rows: int, batch: int | None,
              guarded: bool = False):
    """One optimisation step as a scan body over the carry (params, opt state, the run's key, failed
    step, estimator state) and the inputs (step number, the step's key or None: ``step_keys``).

    ``data`` is the traced argument of the enclosing jit, so arrays are never baked into the
    executable as constants.  The fast step is exactly value_and_grad, update, apply — the loop a
    user would write by hand.  The guarded step, used only to replay a chunk that went non-finite,
    also refuses any non-finite step and records the first one."""
    stochastic = model.stochastic

    def step(carry, xs):
        u, opt_state, key, bad, est = carry
        t, step_key = xs
        d, draw = data, None
        if step_key is not None:
            keys = jax.random.split(step_key) if batched and stochastic else step_key[None]
            sub, draw = keys[0], keys[-1] if stochastic else None
            if batched:
                idx = jax.random.randint(sub, (batch,), 0, n_rows)
                d = {n: (a[idx] if n in batched else a) for n, a in data.items()}
        f = lambda p: model.loss(p, d, draw)  # noqa: E731
        if est:  # estimators with running state (ema baselines)
            (value, est), grads = jax.value_and_grad(lambda p: model.loss_and_state(p, d, draw, est),
                                                     has_aux=True)(u)
        else:
            value, grads = jax.value_and_grad(f)(u)
        updates, new_state = opt.update(grads, opt_state, u, value=value, grad=grads, value_fn=f)
        new_u = optax.apply_updates(u, updates)
        if not guarded:
            return (new_u, new_state, key, bad, est), value
        finite = _all_finite((value, new_u))
        ok = finite & (bad < 0)
        kept = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new_u, u)
        return (kept, new_state, key, jnp.where((bad < 0) & ~finite, t, bad), est), value

    return step


def step_keys(key, ts, keyed: bool):
    """The keys of steps ``ts``: step t's is ``fold_in(key, t)``, so a step draws the same whatever
    the chunks around it.  Drawn for a whole chunk in one vectorised call before its loop: a
    threefry in the loop body would cost every step its own round of small kernels.  ``None``
    when nothing in a step is random."""
    return jax.vmap(lambda t: jax.random.fold_in(key, t))(ts) if keyed else None


def _may_keep_state(program) -> bool:
    """Whether some sample site may use an ema baseline: one that names it, or one that names no
    estimator (the default for a discrete site with one particle).  Whole-guide families never do."""
    from ..ir import nodes as ir
    from ..ir.visit import walk

    stmts = list(program.guide.stmts) if program.guide is not None else []
    stmts += [st for o in program.objectives for n in walk(o.value) if isinstance(n, ir.Expect) for st in n.stmts]
    for st in stmts:
        if isinstance(st, ir.Sample) and st.family is None:
            if st.via is None or any(isinstance(n, ir.ConfigValue) and n.value == "ema" for n in walk(st.via)):
                return True
    return False


def initial_estimator_state(model: Model, u: dict, data: dict) -> dict:
    """Zeros for every running estimator state the objective keeps (found by tracing it once)."""
    if not model.stochastic or not _may_keep_state(model.program):
        return {}
    _, state = jax.eval_shape(lambda u: model.loss_and_state(u, data, jax.random.PRNGKey(0), {}), u)
    return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), state)


def _all_finite(tree) -> jnp.ndarray:
    # one fused reduction: the sum of everything is finite iff every entry is
    return jnp.isfinite(sum(jnp.sum(x) for x in jax.tree.leaves(tree)))


class Loop:
    """The jitted functions of one optimisation loop.  JAX compiles each once per shape of its
    arguments and keeps the executables with the function, so a ``Loop`` kept between fits of the
    same program, dims and optimizer (``Program`` does) runs later fits without compiling again.
    Data are arguments, never constants, so they may change between those fits."""

    def __init__(self, model: Model, opt, batch: int | None):
        _, batched, n_rows = batch_axis(model.program, model.dims, batch)
        keyed = bool(batched) or model.stochastic  # something in a step is random

        @jax.jit
        def chunk(carry, ts, data):
            xs = (ts, step_keys(carry[2], ts, keyed))
            carry, losses = jax.lax.scan(make_step(model, opt, data, batched, n_rows, batch), carry, xs)
            # the parameters are checked here; the losses on the host, which reads them anyway
            return carry, losses, _all_finite(carry[0])

        @jax.jit
        def replay(carry, ts, data):
            """The same steps again, refusing the first non-finite one (same keys, same batches)."""
            xs = (ts, step_keys(carry[2], ts, keyed))
            return jax.lax.scan(make_step(model, opt, data, batched, n_rows, batch, guarded=True), carry, xs)

        self.chunk, self.replay = chunk, replay
        self.reports = jax.jit(lambda u, data: model.reports(u, data))
        self.objectives = jax.jit(lambda u, data, key: model.objective_values(u, data, key))


def run(model: Model, opt, data: dict, *, steps: int, seed: int, log_every: int, batch: int | None,
        progress: Callable | None = None, loop: Loop | None = None) -> Result:
    """Fit ``model`` with ``opt``; ``loop``, when given, is this program's compiled loop from an
    earlier fit with the same dims and optimizer settings."""
    start = time.perf_counter()
    data = {k: jnp.asarray(v) for k, v in data.items()}
    key = jax.random.PRNGKey(seed)
    key, init_key = jax.random.split(key)
    u = model.init(init_key, data)
    opt_state = opt.init(u)
    loop = loop or Loop(model, opt, batch)
    chunk, replay, reports_jit, objectives_jit = loop.chunk, loop.replay, loop.reports, loop.objectives
    sign = -1.0 if model.program.objectives[0].sense == "maximize" else 1.0
    history: dict[str, list] = {"step": [], "objective": [], "reports": {n: [] for n in model.program.reports}}
    carry = (u, opt_state, key, jnp.asarray(-1, jnp.int32), initial_estimator_state(model, u, data))
    done = 0
    last_losses = None
    interrupted = False
    log_every = max(1, min(log_every, steps)) if steps else 1
    try:
        while done < steps:
            n = min(log_every, steps - done)
            ts = jnp.arange(done, done + n, dtype=jnp.int32)
            before = carry
            carry, losses, finite = chunk(carry, ts, data)
            losses = np.asarray(losses)
            if not (bool(finite) and np.isfinite(losses).all()):
                carry, losses = replay(before, ts, data)
                done = int(carry[3])
                break
            done += n
            values = sign * float(losses[-1]) if len(model.program.objectives) == 1 else float(losses[-1])
            history["step"].append(done)
            history["objective"].append(values)
            last_losses = losses
            if model.program.reports:
                reports = reports_jit(carry[0], data)
                for name, v in reports.items():
                    history["reports"][name].append(np.asarray(v).tolist())
            if progress:
                progress(done, steps, values)
    except KeyboardInterrupt:
        interrupted = True
    u, opt_state = carry[0], carry[1]
    failed = int(carry[3]) >= 0
    u_final = u if failed else final_params(opt_state, u)  # a failed run's state is not trusted
    names = [o.name for o in model.program.objectives]
    reports = reports_jit(u_final, data) if model.program.reports else {}
    if model.stochastic and len(names) == 1 and done > 0 and not failed:
        # a Monte-Carlo objective: the mean of the last chunk's estimates (no extra compilation)
        values = jnp.asarray([sign * float(np.mean(last_losses))])
    else:
        values = objectives_jit(u_final, data, jax.random.PRNGKey(seed + 1) if model.stochastic else None)
    objectives = {n: float(v) for n, v in zip(names, values)}
    if len(names) == 1:
        total = float(values[0])
    else:  # several objectives: their aggregate, as the user wrote each (not negated)
        total = float(jnp.mean(values) if model.program.solve.aggregator == "mean" else jnp.sum(values))
    result = Result(
        params={k: jax.tree.map(np.asarray, v) for k, v in model.constrain(u_final).items()},
        objective=total, objectives=objectives,
        reports={k: np.asarray(v) for k, v in reports.items()},
        history=history, steps=done, seed=seed, seconds=time.perf_counter() - start,
        unconstrained={k: jax.tree.map(np.asarray, v) for k, v in u_final.items()},
    )
    if model.ppl is not None and model.program.guide is not None:
        from .posterior import sample_guide, summarize

        # computed when first asked for (the API may never need it; --out does)
        result.posterior_fn = lambda: summarize(sample_guide(model, u_final, data, 1000, seed + 2))
    if failed:
        obj, bad = model.program.objectives[0], int(carry[3])
        err = NonFiniteError(f"the objective or its update became non-finite at step {bad + 1}", obj.span,
                             f"the result keeps the parameters after step {bad}, the last finite ones; "
                             "try a smaller learning rate, or look for log/sqrt of non-positive values")
        err.result = result
        raise err
    if interrupted:
        result.history["interrupted"] = True
    return result
