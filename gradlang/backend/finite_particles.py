"""Monte-Carlo particles whose value or gradient is not finite, rejected.

A particle (one draw of an ``expect`` block, an ``elbo``'s z_k ~ q) can give a non-finite log joint
where the model is fine: a Cholesky of a kernel matrix whose jitter is below float32 precision
fails on a few percent of draws (gp_pois_regr: 1e-6 beside alpha^2 ~ 16).  One such draw makes
the whole estimate, and every parameter's gradient, NaN.  Here the particles are evaluated so that
a bad one can be dropped:

    out_k = f(key_k; theta),   ok_k = all finite(out_k) and all finite(d out_k / d theta)

and, differentiated, the rejected particles' contributions to the cotangent of theta are removed
*before* the particles' contributions are summed (a NaN times a zero cotangent is still NaN, so a
mask on the estimate alone would not do):

    d/d theta = sum_{k: ok_k} sum_j ct_kj d out_kj / d theta.

The caller reduces the accepted particles (``VI.expect``: the mean over them, or the bound over
them).  When no particle is accepted the gradient is NaN (an estimate over no draws is undefined),
which an update wrapped in ``optax.apply_if_finite`` skips (optax's prior art: the parameters
keep their value).

Implementation: the particle function's closed-over traced values (the parameters, the data) are
made explicit arguments (``jax.closure_convert``) of a ``jax.custom_vjp`` whose forward pass
computes each particle's value and Jacobian rows (``jax.vjp`` against the basis of its outputs:
one reverse pass for an elbo particle, one more per score-function site) with respect to the
arguments being differentiated only (``symbolic_zeros``: the data are not), and whose backward
pass contracts the accepted rows with the cotangents.  The cost is that of the usual backward pass;
forward-mode derivatives (a Hessian-vector product through the estimate) are not available, which
is why only the VI defaults (Adam) switch rejection on.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero
from jax.flatten_util import ravel_pytree


def finite_particles(one, keys):
    """``(out, ok)``: ``out = vmap(one)(keys)`` (a pytree of per-particle values, leading axis K)
    and ``ok[K]`` (bool), whether particle k's outputs and, where differentiated, their gradients
    are all finite.  Differentiated, only the accepted particles contribute."""
    converted, consts = jax.closure_convert(one, keys[0])
    return _barrier(converted, keys, *consts)


def _all_finite(tree) -> jnp.ndarray:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


@partial(jax.custom_vjp, nondiff_argnums=(0,))
def _barrier(fn, keys, *consts):
    out = jax.vmap(lambda k: fn(k, *consts))(keys)
    return out, jax.vmap(_all_finite)(out)  # undifferentiated: the values decide


def _fwd(fn, keys, *consts):
    keys = keys.value
    values = [c.value for c in consts]
    moving = [i for i, c in enumerate(consts) if c.perturbed]

    shapes = jax.eval_shape(fn, keys[0], *values)
    unravel = ravel_pytree(jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes))[1]

    def one(key):
        def flat_of(*m):
            args = list(values)
            for i, v in zip(moving, m):
                args[i] = v
            return ravel_pytree(fn(key, *args))[0]

        flat, vjp = jax.vjp(flat_of, *[values[i] for i in moving])  # the forward pass once
        if flat.shape[0] == 1:  # an elbo particle: one output, one reverse pass (no basis to vmap over)
            rows = jax.tree.map(lambda r: r[None], vjp(jnp.ones_like(flat)))
        else:  # d out_j / d theta, per output j (score-function sites add outputs)
            rows = jax.vmap(vjp)(jnp.eye(flat.shape[0], dtype=flat.dtype))
        return unravel(flat), rows, _all_finite(flat) & _all_finite(rows)

    out, rows, ok = jax.vmap(one)(keys)
    full = [None] * len(consts)  # the Jacobian rows of each differentiated argument, None elsewhere
    for i, r in zip(moving, rows):
        full[i] = r
    return (out, ok), (tuple(full), ok)


def _instantiate(ct):
    """A cotangent with its symbolic zeros (``symbolic_zeros=True``) made arrays."""
    return jax.tree.map(lambda c: jnp.zeros(c.shape, c.dtype) if isinstance(c, SymbolicZero) else c, ct,
                        is_leaf=lambda c: isinstance(c, SymbolicZero))


def _bwd(fn, residuals, cts):
    rows, ok = residuals
    ct_flat = jax.vmap(lambda c: ravel_pytree(c)[0])(_instantiate(cts[0]))  # [K, m]
    any_ok = jnp.any(ok)

    def contract(r):  # r [K, m, *shape]: the sum over the accepted particles k of ct_k . r_k
        per = jnp.einsum("km,km...->k...", ct_flat, r)
        kept = jnp.where(ok.reshape((-1,) + (1,) * (per.ndim - 1)), per, 0.0)
        return jnp.where(any_ok, jnp.sum(kept, 0), jnp.nan)  # no draw accepted: undefined

    return (None, *[None if r is None else contract(r) for r in rows])


_barrier.defvjp(_fwd, _bwd, symbolic_zeros=True)
