"""Set-up of a program's model and guide: traced once, with the full data, before the loop.

The model's trace gives each latent's support and shape (and checks observed data against their
supports once, so the hot loop runs without NumPyro's per-call validation); the guide's trace gives
the guide families' parameters (``numpyro.param`` sites, optimised with the program's own), the
number of keyed sites, and the Gaussian sites that share one noise vector.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as nd
from numpyro import handlers

from ..errors import DataError, TypeError_
from ..ir import nodes as ir
from .noise import gaussian_form
from .ppl import PPL


def prototype(ppl: PPL, key, data: dict, params: dict) -> dict:
    """Trace the model once (latent supports and shapes) and then the guide (the families'
    parameters): returns ``{name: (constrained initial value, constraint)}`` of the latter."""
    with numpyro.validation_enabled(True):
        model_trace = handlers.trace(handlers.seed(ppl.model_fn, key)).get_trace(data, params)
    for name, site in model_trace.items():
        if site["type"] == "sample" and site["is_observed"]:
            _check_support(name, site)
    ppl.latents = {n: (s["fn"].support, tuple(jnp.shape(s["value"])))
                    for n, s in model_trace.items() if s["type"] == "sample" and not s["is_observed"]}
    if ppl.program.guide is None:
        return {}
    try:
        guide_trace = handlers.trace(handlers.seed(ppl.guide_fn, key)).get_trace(data, params)
    except ValueError as err:  # a family that cannot fit this model (NumPyro's own check)
        family = ppl.program.guide.family
        if family is None:
            raise
        raise TypeError_(f"guide = {family.value} cannot fit this model: {str(err).splitlines()[0]}",
                         family.span, "use mean_field, or another family") from None
    ppl.guide_sites = sum(s["type"] == "sample" and not s["is_observed"] for s in guide_trace.values())
    ppl.guide_dists = {n: s["fn"] for n, s in guide_trace.items() if s["type"] == "sample"}
    minibatched = {st.name for st in ppl.program.model.stmts if isinstance(st, ir.Sample) and ppl._over_batch(st)}
    for name, fn in ppl.guide_dists.items():
        form = gaussian_form(fn)
        if form is not None and name not in minibatched:
            ppl.gaussian_sites[name] = form[1]
    return {n: (s["value"], s["kwargs"].get("constraint", nd.constraints.real))
            for n, s in guide_trace.items() if s["type"] == "param"}


def _check_support(name: str, site) -> None:
    """Observed data must lie in the support of its distribution (checked once, on the full data,
    so that the hot loop runs without NumPyro's per-call validation)."""
    import numpy as np

    if isinstance(site["value"], jax.core.Tracer):
        return  # data traced by the caller's jit: checked when the program is fitted
    fn = site["fn"]
    base = fn
    while hasattr(base, "base_dist"):
        base = base.base_dist
    inside = np.asarray(base.support(site["value"]))
    if not inside.all():
        bad = np.asarray(site["value"])[~inside].ravel()[:3]
        raise DataError(f"data '{name}' has values outside the support of {type(base).__name__}: "
                        f"{', '.join(f'{v:g}' for v in bad)}", (site.get("infer") or {}).get("span"),
                        f"its support is {base.support}")
