"""Proximal operators: one entry a file, registered under its file stem (the gradlang function name).

The prox of ``f`` with step ``t > 0`` is

    prox_{t f}(v) = argmin_x  f(x) + ||x - v||² / (2 t)

(Moreau 1965; Parikh & Boyd, Proximal Algorithms, 2014).  An entry is a ``Prox`` (an ``eqx.Module``)
built from the term's extra arguments, in the order a program writes them: ``elastic_net(x, l1, l2)``
is ``PROXES.get("elastic_net").value(l1, l2)``, ``group_norm(x, groups)`` is ``...("group_norm")
.value(groups)``, ``box(x, low, high)`` is ``...("box").value(low, high)``.  It has

* ``value(x)``: f(x) as a scalar (an indicator's is 0: its ``violation(x)`` is the distance to the set);
* ``prox(v, t)``: the prox above, for a scalar step ``t > 0``; an indicator's is the projection,
  independent of ``t``; the result has ``v``'s shape and dtype;
* ``prox_conj(y, s)``: the prox of the conjugate, ``prox_{s f*}(y) = y - s prox_{f/s}(y/s)`` (Moreau's
  decomposition), which primal-dual methods call;
* flags the composition rules of ``compose.py`` read: ``indicator``, ``convex``, ``separable``
  (f(x) = Σ_i g_i(x_i), each g_i closed convex), ``uniform`` (separable with one g for every entry),
  ``sign_preserving`` (every entry of prox(v, t) is 0 or has the sign of v's entry, and is 0 where
  v's is).

All are pure JAX: ``jit``- and ``vmap``-able, for float32 and float64.  A term ``c * f(p)`` (c > 0)
is ``scaled(f, c)``: prox_{t c f} = prox_{(c t) f}.
"""

from __future__ import annotations

from typing import Any, ClassVar

import equinox as eqx
import jax.numpy as jnp

from ...registry import Registry

PROXES = Registry("prox", "gradlang.lib.prox", by_file=True)
PARIKH_BOYD = "Parikh & Boyd, Proximal Algorithms, Foundations and Trends in Optimization 1(3), 2014"
BECK = "Beck, First-Order Methods in Optimization, SIAM 2017, ch. 6"


def soft_threshold(v, tau):
    """sign(v) max(|v| - tau, 0), written v - clip(v, -tau, tau) (exact: 0 inside, v ∓ tau outside)."""
    return v - jnp.clip(v, -tau, tau)


def _floating(v):
    v = jnp.asarray(v)
    return v if jnp.issubdtype(v.dtype, jnp.floating) else v.astype(jnp.result_type(float))


def _is_scalar(a) -> bool:
    return jnp.ndim(a) == 0


class Prox(eqx.Module):
    """A function with a proximal operator (the base of every entry)."""

    name: ClassVar[str] = ""
    indicator: ClassVar[bool] = False
    convex: ClassVar[bool] = True

    @property
    def separable(self) -> bool:
        return False

    @property
    def uniform(self) -> bool:
        return False

    @property
    def sign_preserving(self) -> bool:
        return False

    def value(self, x):
        raise NotImplementedError

    def _prox(self, v, t):
        raise NotImplementedError

    def prox(self, v, t):
        v = _floating(v)
        return self._prox(v, jnp.asarray(t, v.dtype)).astype(v.dtype)

    def violation(self, x):
        """0 for a function; an indicator's is the Euclidean distance to its set."""
        return jnp.zeros((), _floating(x).dtype)

    def prox_conj(self, y, s):
        """prox_{s f*}(y) = y - s prox_{f/s}(y / s) (Moreau's decomposition, f convex)."""
        y = _floating(y)
        s = jnp.asarray(s, y.dtype)
        return y - s * self.prox(y / s, 1 / s)


class Indicator(Prox):
    """The indicator of a closed set C: 0 on C, +inf off it; its prox is the projection onto C."""

    indicator: ClassVar[bool] = True

    def project(self, v):
        raise NotImplementedError

    def value(self, x):
        return jnp.zeros((), _floating(x).dtype)

    def _prox(self, v, t):
        return self.project(v)

    def violation(self, x):
        x = _floating(x)
        return jnp.sqrt(jnp.sum(jnp.square(x - self.prox(x, 1.0))))


class Wrapped(Prox):
    """A function built on one other (``base``), with its flags unless a subclass says otherwise."""

    base: Prox

    @property
    def name(self):  # type: ignore[override]
        return self.base.name

    @property
    def convex(self):  # type: ignore[override]
        return self.base.convex

    @property
    def separable(self):
        return self.base.separable

    @property
    def uniform(self):
        return self.base.uniform

    @property
    def sign_preserving(self):
        return self.base.sign_preserving


class Scaled(Wrapped):
    """c * f for a constant c > 0: value c f(x), prox_{t c f}(v) = prox_{(c t) f}(v)."""

    c: Any

    @property
    def uniform(self):
        return self.base.uniform and _is_scalar(self.c)

    def value(self, x):
        return self.c * self.base.value(x)

    def _prox(self, v, t):
        return self.base.prox(v, jnp.asarray(self.c, v.dtype) * t)


def scaled(p: Prox, c) -> Prox:
    """The term c * p: p itself for an indicator or c == 1; a ``Scaled`` otherwise (c > 0)."""
    if p.indicator:
        return p
    try:
        concrete = float(c)
    except TypeError:  # a traced coefficient (or an array): its sign is the caller's to check
        return Scaled(p, c)
    if concrete <= 0:
        raise ValueError(f"the coefficient of a prox term must be positive, got {concrete}")
    return p if concrete == 1.0 else Scaled(p, c)


def unscaled(p: Prox) -> tuple[Prox, Any]:
    """(base, c) with p = c * base."""
    c = 1.0
    while isinstance(p, Scaled):
        c, p = c * p.c, p.base
    return p, c


class Declared(Prox):
    """A user function with a user prox (``fn f(x) = …`` with ``prox f(v, t) = …``): the program's
    own ``value_fn(x)`` and ``prox_fn(v, t)``, and the flags the composition rules read.

    The flags are claims the caller must establish (nothing here can check them), e.g. from the
    function's body: a ``sum`` of one elementwise expression of x is separable and uniform; one that
    sees x only through ``abs(x)`` or even powers is even.  A convex, separable, uniform and even
    function has an odd, nondecreasing prox, hence a sign-preserving one (so ``sign_preserving``
    follows from those four unless given).  ``convex`` defaults to True, as a prox declaration
    presumes; the others to False, which only ever refuses compositions.
    """

    value_fn: Any = eqx.field(static=True)
    prox_fn: Any = eqx.field(static=True)
    label: str = eqx.field(static=True, default="declared")
    is_convex: bool = eqx.field(static=True, default=True)
    is_separable: bool = eqx.field(static=True, default=False)
    is_uniform: bool = eqx.field(static=True, default=False)
    is_even: bool = eqx.field(static=True, default=False)
    is_sign_preserving: bool | None = eqx.field(static=True, default=None)

    @property
    def name(self):  # type: ignore[override]
        return self.label

    @property
    def convex(self):  # type: ignore[override]
        return self.is_convex

    @property
    def separable(self):
        return self.is_separable or self.is_uniform

    @property
    def uniform(self):
        return self.is_uniform

    @property
    def sign_preserving(self):
        if self.is_sign_preserving is not None:
            return self.is_sign_preserving
        return self.is_convex and self.is_uniform and self.is_even

    def value(self, x):
        return self.value_fn(x)

    def _prox(self, v, t):
        return jnp.asarray(self.prox_fn(v, t))
