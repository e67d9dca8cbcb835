"""The prox terms of a split objective, applied: ``prox_{t g}(v)`` for every parameter with terms.

``split_prox`` wrote the plan (``ir.ProxSplit``): the smooth part, the terms ``c * f(p, ...)`` and,
for a parameter with two terms, the identity that composes them.  Here each term becomes its prox
entry (``lib/prox``) or the user's ``prox`` declaration, evaluated with the term's weight and
arguments, and the parameters without a term are left as they are (the identity is the prox of 0).
"""

from __future__ import annotations

import jax.numpy as jnp

from ..ir import nodes as ir
from .evaluate import Evaluator


class ProxApplication:
    """``apply(u, t)``: the prox step of every term at step size ``t``; ``terms_value(u)``: the sum
    of the terms as written.  Built inside a trace (weights and arguments may read data)."""

    def __init__(self, program: ir.Program, dims: dict, data: dict):
        self.program, self.split = program, program.split
        self.ev = Evaluator(program, data, {}, program.consts, dims)
        self.composed = {c.param: c for c in self.split.composed}

    def _weight(self, term: ir.ProxTerm):
        return jnp.asarray(self.ev.eval(term.weight), jnp.float32)

    def _prox(self, term: ir.ProxTerm, v, t):
        """prox of ``t * weight * f`` at ``v``."""
        step = t * self._weight(term)
        if term.user:
            decl = self.program.proxes[term.fn]
            return self.ev.eval(decl.body, {decl.params[0]: v, decl.params[1]: step})
        from ..lib.prox import PROXES

        args = [self.ev.eval(a) for a in term.args]
        return PROXES.get(term.fn, term.span).value(*args).prox(v, step)

    def apply(self, u: dict, t) -> dict:
        out = dict(u)
        by_param: dict[str, list[ir.ProxTerm]] = {}
        for term in self.split.terms:
            by_param.setdefault(term.param, []).append(term)
        for param, terms in by_param.items():
            v = u[param]
            if param in self.composed:
                out[param] = self._composed(self.composed[param], v, t)
            else:
                out[param] = self._prox(terms[0], v, t)
        return out

    def _composed(self, c: ir.ComposedProx, v, t):
        """The prox of the sum by the identity ``c.rule`` (``passes/compose_prox.py``)."""
        first, second = c.terms
        if c.rule in ("fused", "soft_threshold_then", "then_nonneg"):
            return self._prox(second, self._prox(first, v, t), t)
        if c.rule == "scaled":  # first is c * sumsq: prox_g(v / (1 + 2ct), t / (1 + 2ct))
            shrink = 1.0 + 2.0 * self._weight(first) * t
            return self._prox(second, v / shrink, t / shrink)
        raise AssertionError(f"unknown composition rule {c.rule}")

    def terms_value(self, u: dict):
        params = {**u}
        ev = Evaluator(self.program, self.ev.values["data"], params, self.program.consts, self.ev.values["dim"])
        return sum(jnp.asarray(ev.eval(term.expr), jnp.float32) for term in self.split.terms)
