"""Conflict between objectives: the cosine similarities of their gradients.

For a vector objective with losses l_i (maximised ones negated), ``cos_ij = <g_i, g_j> / (|g_i|
|g_j|)`` with ``g_i = dl_i/du``: the normalised Gramian of the Jacobian.  A negative entry means
a step along one objective's gradient worsens the other; the pair with the smallest cosine is the
most conflicting (reported at the end of a run, and kept at every log point in the history).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from ...lib.aggregators import gramian


def cosines(model, u: dict, data: dict, key=None) -> jnp.ndarray:
    """The m x m cosine similarities of the objectives' gradients at ``u`` (0 for a zero gradient)."""
    flat, unravel = ravel_pytree(u)
    signs = jnp.asarray([1.0 if o.sense == "minimize" else -1.0 for o in model.program.objectives], jnp.float32)
    draw = (key if key is not None else jax.random.PRNGKey(0)) if model.stochastic else None
    J = jax.jacrev(lambda x: signs * model.objective_values(unravel(x), data, draw))(flat)
    return cosines_of(gramian(J))


def cosines_of(G) -> jnp.ndarray:
    """The cosine similarities of the rows whose Gramian is ``G`` (0 for a zero row)."""
    norms = jnp.sqrt(jnp.clip(jnp.diag(G), 0.0))
    return jnp.where(jnp.outer(norms, norms) > 0, G / jnp.maximum(jnp.outer(norms, norms), 1e-30), 0.0)


def most_conflicting(names: list[str], C) -> tuple[str, str, float] | None:
    """The pair with the smallest cosine (None with one objective)."""
    import numpy as np

    C = np.asarray(C, np.float64)
    pairs = [(C[i, j], names[i], names[j]) for i in range(len(names)) for j in range(i + 1, len(names))]
    if not pairs:
        return None
    c, a, b = min(pairs)
    return a, b, float(c)


def report(model, u: dict, data: dict, seed: int) -> dict[str, float]:
    """``{"a|b": cosine}`` for every pair of objectives at ``u`` (the Result's conflict report)."""
    import numpy as np

    C = np.asarray(jax.jit(lambda u, d: cosines(model, u, d, jax.random.PRNGKey(seed)))(u, data))
    names = [o.name for o in model.program.objectives]
    return {f"{a}|{b}": float(C[i, j]) for i, a in enumerate(names) for j, b in enumerate(names) if i < j}
