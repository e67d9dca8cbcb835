"""Posterior draws from the fitted guide, and their summaries (mean, sd, 5% and 95% quantiles)."""

from __future__ import annotations

import jax
import numpy as np
import numpyro

from .build import Model


def sample_guide(model: Model, unconstrained: dict, data: dict, n: int, seed: int) -> dict[str, np.ndarray]:
    """``n`` joint draws of the model's latents from the guide at the fitted parameters."""
    from .guide_draw import GuideDraws

    params = model.constrain(unconstrained)

    def one(key):
        with numpyro.validation_enabled(False):
            return GuideDraws(model.ppl, data, params).sample(key)

    draws = jax.jit(jax.vmap(one))(jax.random.split(jax.random.PRNGKey(seed), n))
    return {k: np.asarray(v) for k, v in draws.items() if k in model.ppl.latents}


def summarize(draws: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    return {name: {"mean": d.mean(0), "sd": d.std(0), "q5": np.quantile(d, 0.05, axis=0),
                   "q95": np.quantile(d, 0.95, axis=0)} for name, d in draws.items()}
