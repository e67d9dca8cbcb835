"""Posterior draws from the fitted guide, and their summaries (mean, sd, 5% and 95% quantiles)."""

from __future__ import annotations

import jax
import numpy as np
import numpyro

from .build import Model
from .keys import (  # the draws' keys on the host: JAX's, without a compile
    prng_key,
    split,
)

# XLA options for a function compiled and run once a fit (posterior draws, k̂'s and PSIS's weights):
# its compilation, not its run, is what costs.  Without the backend optimisations, kidiq's 1000
# guide draws compile in 0.29 s instead of 0.6 s and run in 0.5 ms instead of 0.1-0.9 ms.
ONCE = {"xla_backend_optimization_level": 0}


def kept(model: Model, name: str, make):
    """The function ``make()`` (a jitted function of the parameters, data and keys), made once per
    checked program and dims and kept with the program's IR (each fit builds its model afresh,
    the IR stays): the fits after the first (other seeds, other data of the same shapes) reuse its
    compilation, and it goes when the program goes."""
    store = model.program.__dict__.setdefault("_compiled_after_fit", {})
    ppl = model.ppl
    key = (name, tuple(sorted(model.dims.items())), ppl.batch_dim, ppl.batched, ppl.n_rows)
    if key not in store:
        store[key] = make()
    return store[key]


def sample_guide(model: Model, unconstrained: dict, data: dict, n: int, seed: int) -> dict[str, np.ndarray]:
    """``n`` joint draws of the model's latents from the guide at the fitted parameters."""
    from .guide_draw import GuideDraws

    def make():
        def draws(unconstrained, data, keys):
            params = model.constrain(unconstrained)

            def one(key):
                with numpyro.validation_enabled(False):
                    return GuideDraws(model.ppl, data, params).sample(key)

            return jax.vmap(one)(keys)

        return jax.jit(draws, compiler_options=ONCE)

    draws = kept(model, "sample_guide", make)(unconstrained, data, split(prng_key(seed), n))
    return {k: np.asarray(v) for k, v in draws.items() if k in model.ppl.latents}


def summarize(draws: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    return {name: {"mean": d.mean(0), "sd": d.std(0), "q5": np.quantile(d, 0.05, axis=0),
                   "q95": np.quantile(d, 0.95, axis=0)} for name, d in draws.items()}
