"""Whether code runs inside a trace: where a once-a-fit function compiled with XLA options
(``jax.jit(..., compiler_options=...)``, which only a top-level jit takes) must be traced inline."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def tracing(*trees) -> bool:
    """Inside a trace (a jit's or an ``eval_shape``'s), where even a new constant is a tracer, or
    given tracers."""
    return isinstance(jnp.zeros(()), jax.core.Tracer) or any(
        isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(trees))
