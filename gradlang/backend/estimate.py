"""A Monte-Carlo objective's final estimate: many independent evaluations at the final parameters."""

from __future__ import annotations

import jax
import numpy as np

from .build import Model
from .keys import prng_key, split

ESTIMATE_DRAWS = 64  # independent evaluations of a Monte-Carlo objective at the final parameters


def estimate(model: Model, solver, u: dict, data: dict, seed: int):
    """``(total, its standard error, {name: value}, {name: standard error})``: a Monte-Carlo
    objective at ``u`` over the full data, the mean of ``ESTIMATE_DRAWS`` independent evaluations
    of the program's own estimator (each with its particles), and the standard error of that mean,
    sd / sqrt(draws).  Under the VI defaults' ``reject=nonfinite``, over the evaluations that
    accepted a particle."""
    keys = split(prng_key(seed + 1), ESTIMATE_DRAWS)

    @jax.jit
    def draws(u, data, keys):
        values = jax.vmap(lambda k: model.objective_values(u, data, k))(keys)
        return values, jax.vmap(lambda v: solver.objective({"values": v}))(values)

    values, totals = (np.asarray(x, np.float64) for x in draws(u, data, keys))
    defaults = model.program.vi_defaults
    if defaults is not None and defaults.reject_nonfinite:
        # an evaluation none of whose particles was accepted is NaN: it estimates nothing (the
        # fit skipped such steps too); the estimate is over the others
        kept = np.isfinite(totals)
        values, totals = values[kept], totals[kept]
    se = lambda x: float(x.std(0, ddof=1) / np.sqrt(len(x))) if len(x) > 1 else float("nan")
    names = [o.name for o in model.program.objectives]
    return (float(totals.mean()), se(totals), {n: float(values[:, i].mean()) for i, n in enumerate(names)},
            {n: se(values[:, i]) for i, n in enumerate(names)})
