"""The prox terms of a split objective, applied: ``prox_{t g}(v)`` for every parameter with terms.

``split_prox`` wrote the plan (``ProxSplit``): the smooth part, the terms ``c * f(p, ...)`` and,
for a parameter with two terms, the identity that composes them.  Here each term becomes its prox
entry (``lib/prox``) or the user's ``prox`` declaration, scaled by the term's weight, a pair is
composed by ``lib/prox/compose.py`` (whose identities the pass's decision names), and the
parameters without a term are left as they are (the identity is the prox of 0).
"""

from __future__ import annotations

import jax.numpy as jnp

from ..errors import InternalError
from ..ir import nodes as ir
from ..ir.plan import ProxTerm
from .evaluate import Evaluator


class ProxApplication:
    """``apply(u, t)``: the prox step of every term at step size ``t``; ``terms_value(u)``: the sum
    of the terms as written.  Built inside a trace (weights and arguments may read data)."""

    def __init__(self, program: ir.Program, dims: dict, data: dict):
        self.program, self.split = program, program.split
        self.ev = Evaluator(program, data, {}, program.consts, dims)
        self.composed = {c.param: c for c in self.split.composed}

    def _weight(self, term: ProxTerm):
        return jnp.asarray(self.ev.eval(term.weight), jnp.float32)

    def entry(self, term: ProxTerm):
        """The term ``weight * f`` as a prox entry of ``lib/prox`` (``scaled``); a declared prox as
        ``Declared`` with the flags split_prox established (odd and elementwise: even, separable)."""
        from ..lib.prox import PROXES, Declared, scaled

        if term.user:
            decl = self.program.proxes[term.fn]

            def prox_fn(v, t, decl=decl):
                return self.ev.eval(decl.body, {decl.params[0]: v, decl.params[1]: t})

            composed = self.composed.get(term.param)
            checked = composed is not None and composed.rule in ("soft_threshold_then", "then_nonneg")
            base = Declared(None, prox_fn, term.fn, is_separable=checked, is_uniform=checked, is_even=checked)
        else:
            base = PROXES.get(term.fn, term.span).value(*[self.ev.eval(a) for a in term.args])
        return scaled(base, self._weight(term)) if not base.indicator else base

    def apply(self, u: dict, t) -> dict:
        from ..lib.prox.compose import compose

        out = dict(u)
        by_param: dict[str, list[ProxTerm]] = {}
        for term in self.split.terms:
            by_param.setdefault(term.param, []).append(term)
        for param, terms in by_param.items():
            entries = [self.entry(term) for term in terms]
            prox = entries[0] if len(entries) == 1 else compose(*entries)
            if prox is None:  # split_prox decided the pair composes: the identities must agree
                raise InternalError(f"the prox terms of {param} do not compose", terms[0].span,
                                    "split_prox and lib/prox/compose.py disagree; this is a bug in gradlang")
            out[param] = prox.prox(u[param], t)
        return out

    def terms_value(self, u: dict):
        params = {**u}
        ev = Evaluator(self.program, self.ev.values["data"], params, self.program.consts, self.ev.values["dim"])
        return sum((jnp.asarray(ev.eval(term.expr), jnp.float32) for term in self.split.terms + self.split.dual),
                   jnp.zeros((), jnp.float32))
