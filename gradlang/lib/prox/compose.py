"""Exact proxes of sums of two prox terms on one parameter: ``compose(a, b)``.

``compose(a, b)`` returns a ``Prox`` for a + b when its prox is known exactly from those of a and b,
else None (the caller then needs a splitting method: admm or pdhg).  a and b are entries, ``scaled``
entries (c * f) or earlier results of ``compose``; the result has ``rule`` (the identity used, for
the IR) and the flags of the sum, so it composes further.  The rules, tried in this order (each
on (a, b), then on (b, a)):

1. **ridge**: f + (μ/2)||x||² for ANY f (convex or not):  prox_{t(f + (μ/2)||·||²)}(v) =
   prox_f(v / (1 + μt), t / (1 + μt)), since f(x) + (μ/2)||x||² + ||x - v||²/(2t) equals
   f(x) + (1 + μt)/(2t) ||x - v/(1 + μt)||² + const.  c * sumsq is μ = 2c.  (Parikh & Boyd 2014,
   §2.2; Beck 2017, Thm 6.13.)  An elastic_net with scalar weights is split into its l1 and sumsq
   parts so that this rule and rule 5 apply to it.
2. **clip after a separable term**: f(x) = Σ_i g_i(x_i) with each g_i closed convex on ℝ, plus the
   indicator of a box (nonneg, box, linf_ball):  prox_{f + ι_box}(v) = clip(prox_f(v), low, high).
   Exact for every such f: coordinate i minimises the strongly convex 1-D function
   g_i(x) + (x - v_i)²/(2t) over an interval, whose minimiser is the unconstrained one clipped to it.
   (Needs separability: for norm2 or tv1d with nonneg it is false.)
3. **after tv1d, a uniform separable term** (the fused lasso, Friedman, Hastie, Höfling & Tibshirani,
   Pathwise coordinate optimization, Ann. Appl. Stat. 2007):  prox_{TV + h}(v) = prox_h(prox_TV(v))
   for h(x) = Σ_i g(x_i), the SAME closed convex g for every entry (norm1, sumsq, elastic_net and box
   with scalar weights / bounds, nonneg).  Proof (Yu, On decomposing the proximal map, NeurIPS 2013,
   Thm 1): prox_{f+g} = prox_g ∘ prox_f whenever ∂f(u) ⊆ ∂f(prox_g(u)) for all u; prox_h applies
   one nondecreasing map to every entry, so u_i < u_{i+1} gives prox_h(u)_i <= prox_h(u)_{i+1} and
   u_i = u_{i+1} gives equality: each sign(x_{i+1} - x_i) can only widen to [-1, 1], and ∂TV grows.
   With per-entry weights or bounds it is false.
4. **nonneg before a sign-preserving term**:  prox_{f + ι_{>=0}}(v) = prox_f(max(v, 0)) when
   y = prox_f(max(v, 0)) is >= 0 and 0 wherever v < 0, as it is for a sign-preserving prox (norm2,
   group_norm, linf, the l1/l2/linf balls, k_sparse — convex or not).  Proof: with v = v₊ - v₋,
   ||x - v||² = ||x - v₊||² + 2<x, v₋> + ||v₋||², and <x, v₋> >= 0 = <y, v₋> for x >= 0, so y, the
   unconstrained minimiser of f(x) + ||x - v₊||²/(2t), minimises the constrained objective.
5. **soft-threshold before a sign-preserving convex term**:  prox_{λ||·||₁ + g}(v) = prox_g(soft(v, λt))
   for g convex with a sign-preserving prox (norm2, group_norm — the sparse group lasso of Friedman,
   Hastie & Tibshirani, A note on the group lasso and a sparse group lasso, 2010 — linf, the balls).
   Proof: Yu 2013, Thm 1 again: ∂||·||₁ is constant on the sign pattern of u, and prox_g(u) keeps
   signs or zeroes entries, where ∂|·| is [-1, 1]; so ∂||·||₁(u) ⊆ ∂||·||₁(prox_g(u)).
6. **nonneg with simplex**: the simplex lies in the orthant, so the sum is the simplex itself.

Anything else (e.g. tv1d with norm2, nuclear with norm1, two balls) returns None.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax.numpy as jnp

from . import Prox, Wrapped, _is_scalar, scaled, unscaled
from .elastic_net import ElasticNet
from .nonneg import Nonneg
from .norm1 import Norm1
from .simplex import Simplex
from .sumsq import Sumsq
from .tv1d import TV1D


class Chain(Prox):
    """first + then, with prox_{first + then} = prox_then ∘ prox_first (``rule`` says why)."""

    first: Prox
    then: Prox
    rule: str = eqx.field(static=True)

    @property
    def name(self):  # type: ignore[override]
        return f"{self.first.name}+{self.then.name}"

    @property
    def indicator(self):  # type: ignore[override]
        return self.first.indicator and self.then.indicator

    @property
    def convex(self):  # type: ignore[override]
        return self.first.convex and self.then.convex

    @property
    def separable(self):
        return self.first.separable and self.then.separable

    @property
    def uniform(self):
        return self.first.uniform and self.then.uniform

    @property
    def sign_preserving(self):
        return self.first.sign_preserving and self.then.sign_preserving

    def value(self, x):
        return self.first.value(x) + self.then.value(x)

    def _prox(self, v, t):
        return self.then.prox(self.first.prox(v, t), t)

    def violation(self, x):
        """The sum of the parts' violations (0 exactly when x is in every set)."""
        return self.first.violation(x) + self.then.violation(x)


class Ridge(Wrapped):
    """base + (mu/2)||x||²:  prox(v, t) = prox_base(v / (1 + mu t), t / (1 + mu t))."""

    mu: Any
    rule: str = eqx.field(static=True)

    @property
    def name(self):  # type: ignore[override]
        return f"{self.base.name}+sumsq"

    @property
    def uniform(self):
        return self.base.uniform and _is_scalar(self.mu)

    def value(self, x):
        return self.base.value(x) + self.mu / 2 * jnp.sum(jnp.square(x))

    def _prox(self, v, t):
        s = 1 + jnp.asarray(self.mu, v.dtype) * t
        return self.base.prox(v / s, t / s)

    def violation(self, x):
        return self.base.violation(x)


def _is(p: Prox, cls) -> bool:
    return isinstance(unscaled(p)[0], cls)


def _ridge(a: Prox, b: Prox) -> Prox | None:
    base_a, c_a = unscaled(a)
    if isinstance(base_a, Sumsq) and (_is_scalar(c_a) or b.separable):
        return Ridge(b, 2 * c_a, "ridge: prox_{f + (mu/2)|x|^2}(v, t) = prox_f(v/(1+mu t), t/(1+mu t))")
    return None


def _clip_after_separable(a: Prox, b: Prox) -> Prox | None:
    if b.indicator and b.separable and a.separable and a.convex:
        return Chain(a, b, "clip after a separable convex term: prox = proj_box(prox_f(v))")
    return None


def _after_tv(a: Prox, b: Prox) -> Prox | None:
    if not (b.uniform and b.convex):
        return None
    if _is(a, TV1D):
        return Chain(a, b, "after tv1d, a uniform separable term: prox = prox_h(prox_tv(v)) "
                           "(fused lasso when h is norm1)")
    if isinstance(a, Chain) and _is(a.first, TV1D):  # (tv1d + h1) + h2 = tv1d + (h1 + h2)
        h = compose(a.then, b)
        if h is not None and h.uniform and h.convex:
            return Chain(a.first, h, a.rule)
    return None


def _nonneg_before(a: Prox, b: Prox) -> Prox | None:
    if _is(a, Nonneg) and b.sign_preserving:
        return Chain(a, b, "nonneg before a sign-preserving term: prox = prox_f(max(v, 0))")
    return None


def _soft_before(a: Prox, b: Prox) -> Prox | None:
    if _is(a, Norm1) and b.sign_preserving and b.convex:
        return Chain(a, b, "soft-threshold before a sign-preserving convex term: prox = prox_g(soft(v))")
    return None


def _simplex_in_orthant(a: Prox, b: Prox) -> Prox | None:
    return b if _is(a, Nonneg) and _is(b, Simplex) else None


def _split_elastic_net(a: Prox, b: Prox) -> Prox | None:
    base_a, c_a = unscaled(a)
    if not (isinstance(base_a, ElasticNet) and _is_scalar(base_a.l1) and _is_scalar(base_a.l2)):
        return None
    try:
        l1, l2 = scaled(Norm1(), c_a * base_a.l1), scaled(Sumsq(), c_a * base_a.l2)
    except ValueError:  # a zero weight: elastic_net is then one of its parts
        return None
    inner = compose(l1, b)
    return None if inner is None else compose(inner, l2)


RULES = (_ridge, _clip_after_separable, _after_tv, _nonneg_before, _soft_before, _simplex_in_orthant,
         _split_elastic_net)


def compose(a: Prox, b: Prox) -> Prox | None:
    """An exact prox for a + b (see the module docstring for the rules), or None.

    The rules are tried in order, each on (a, b) and then (b, a), so the result does not depend on
    the order of the terms."""
    for rule in RULES:
        for x, y in ((a, b), (b, a)):
            out = rule(x, y)
            if out is not None:
                return out
    return None
