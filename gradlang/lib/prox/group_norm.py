"""group_norm(x, groups): the sum over groups of each group's l2 norm (the group lasso penalty)."""

from __future__ import annotations

from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from . import PARIKH_BOYD, PROXES, Prox
from .norm2 import shrink_factor


@PROXES.register("group_norm", cite="Yuan & Lin, Model selection and estimation in regression with "
                 f"grouped variables, JRSS-B 68(1), 2006; {PARIKH_BOYD}, §6.5 (norms: sums of norms)")
class GroupNorm(Prox):
    """f(x) = Σ_g ||x_g||₂, x_g the entries of x whose group id is g;

    prox_{t f}(v)_g = max(0, 1 - t / ||v_g||₂) v_g  (group soft-thresholding, group by group).

    ``groups``: an int array of group ids, one per entry of x (x's shape).  Any ids will do: they are
    renumbered 0..G-1 from the concrete array, and G, the number of groups, is static (segment sums
    need it at trace time).  Pass ``num_groups`` to use ids already in 0..num_groups-1 as they are;
    traced ids (data) must lie in 0..n-1 for n entries, and n segments bound the groups (an empty
    segment has norm 0 and adds nothing).  The dual norm is max_g ||y_g||₂, so
    prox_{t f}(v) = v - t proj_{max_g ||·_g|| <= 1}(v / t).
    """

    name: ClassVar[str] = "group_norm"
    ids: Any
    num_groups: int = eqx.field(static=True)
    sign_preserving = True

    def __init__(self, groups, num_groups: int | None = None):
        if num_groups is None:
            try:
                g = np.asarray(groups)
            except jax.errors.TracerArrayConversionError:  # ids traced (data): at most one group an entry
                self.ids = jnp.asarray(groups, jnp.int32)
                self.num_groups = int(np.size(groups))
                return
            if not np.issubdtype(g.dtype, np.integer) and not np.all(g == np.round(g)):
                raise ValueError("group_norm: group ids must be integers")
            uniq, inverse = np.unique(g.ravel(), return_inverse=True)
            self.ids = jnp.asarray(inverse.reshape(g.shape), jnp.int32)
            self.num_groups = int(uniq.size)
        else:
            self.ids = jnp.asarray(groups, jnp.int32)
            self.num_groups = int(num_groups)

    def group_norms(self, x):
        """||x_g||₂ for g = 0..G-1."""
        if jnp.shape(self.ids) != jnp.shape(x):
            # no sizes in the message: at check time they are placeholders for the data's dims, and
            # the caller's "cannot apply group_norm to (real[6], int[K])" states the declared ones
            raise ValueError("group_norm(x, groups) needs one group id per entry of x: groups must have "
                             "x's shape")
        sq = jax.ops.segment_sum(jnp.square(x).ravel(), self.ids.ravel(), num_segments=self.num_groups)
        return jnp.sqrt(sq)

    def value(self, x):
        return jnp.sum(self.group_norms(x))

    def _prox(self, v, t):
        factor = shrink_factor(self.group_norms(v), t)
        return v * factor[self.ids].reshape(v.shape)
