"""The sum of all entries of a small array, written so that XLA:CPU compiles it into its consumer.

XLA:CPU's tree reduction rewriter splits every reduction over more than ``TREE_WINDOW`` (32)
entries into a ``reduce-window`` of 32-entry windows and a reduction of the windows' sums: two
kernels, neither fused with what consumes the sum.  A reduction over at most 32 entries is left
alone and fused into its consumer's kernel.  So ``total`` sums an array of 33 to ``FUSED_MAX``
entries as the sum of its 32-entry slices' sums: one kernel with its consumer instead of three.
Each kernel costs every fit about 5 ms of compiling, and a step a launch: a ridge regression's
``sumsq(w)`` over 50 weights, so summed, made its compiled loop four kernels smaller and its step
1.5% cheaper; a minibatch of 128's ``mean``, five kernels, 50 ms of compiling and 2-3% a step.
Its derivative is ``jnp.sum``'s (a gradient is one broadcast, not the slices' pads).  Larger
arrays are summed by ``jnp.sum`` (XLA:CPU gives those of thousands of entries to YNNPACK, whose
kernels compile in almost no time), and so is every array inside ``whole_sums()``: a computation
compiled without the rewriter (``compile_options.fast_compile``, ``keeps_tree_reductions``) has each reduction whole already,
and its elemental emitter made the slices cost a lasso's fista step 20%.  The value is the same
sum, its terms grouped differently: equal to ``jnp.sum``'s up to rounding.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import operator

import jax
import jax.numpy as jnp

TREE_WINDOW = 32   # the entries of a reduction XLA:CPU's tree reduction rewriter leaves whole
FUSED_MAX = 256    # the most entries summed as slices (eight reductions in one kernel)

_SLICED = contextvars.ContextVar("gradlang_sliced_sums", default=True)


@contextlib.contextmanager
def whole_sums(whole: bool = True):
    """Within, traced sums are ``jnp.sum``'s whatever their size (where ``whole``)."""
    token = _SLICED.set(not whole and _SLICED.get())
    try:
        yield
    finally:
        _SLICED.reset(token)


def total(x) -> jnp.ndarray:
    """The sum of all entries of ``x``, as ``jnp.sum(x)`` (its dtype included)."""
    flat = jnp.ravel(x)
    n = flat.shape[0]
    if n <= TREE_WINDOW or n > FUSED_MAX or not _SLICED.get():
        return jnp.sum(flat)
    if jnp.issubdtype(flat.dtype, jnp.inexact):
        return _sliced_differentiable(flat)
    return _sliced(flat)  # integers, booleans: nothing to differentiate


def _sliced(flat):
    return functools.reduce(operator.add, (jnp.sum(flat[i:i + TREE_WINDOW])
                                           for i in range(0, flat.shape[0], TREE_WINDOW)))


@jax.custom_jvp
def _sliced_differentiable(flat):
    return _sliced(flat)


@_sliced_differentiable.defjvp
def _sliced_jvp(primals, tangents):
    # a sum's derivative, as jnp.sum's: its transpose (a gradient) is one broadcast, where the
    # slices' own would pad each slice's and add them
    (flat,), (dflat,) = primals, tangents
    return _sliced(flat), jnp.sum(dflat)


def sum_(a, axis=None, **kwargs):
    """Sum of the elements of the array over a given axis.

    ``jax.numpy.sum``; a whole small array's sum by ``total``."""
    if axis is None and not kwargs:
        return total(a)
    return jnp.sum(a, axis, **kwargs)


def mean(a, axis=None, **kwargs):
    """Mean of the elements of the array over a given axis.

    ``jax.numpy.mean``; a whole small array's by ``total``."""
    if axis is None and not kwargs:
        a = jnp.asarray(a)
        if not jnp.issubdtype(a.dtype, jnp.inexact):  # integers and booleans: jnp.mean's default float
            a = a.astype(jnp.result_type(float))
        return total(a) / a.size
    return jnp.mean(a, axis, **kwargs)
