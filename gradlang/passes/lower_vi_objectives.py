"""Lower elbo / iwae / renyi to their expect form: the backend is left with one Monte-Carlo construct.

    elbo(K)      ->  expect(K) { _z ~ guide; logp(model, _z) - logq(guide, _z) }
    iwae(K)      ->  the same block, reduce = renyi, alpha = 0:  log mean_k exp(w_k)
    renyi(a, K)  ->  the same block, reduce = renyi, alpha = a:  1/(1-a) log mean_k exp((1-a) w_k)

with ``w_k`` the log weight of particle k (Burda, Grosse & Salakhutdinov, Importance Weighted
Autoencoders, ICLR 2016; Li & Turner, Renyi Divergence Variational Inference, NeurIPS 2016).
Every node built takes the span of the objective it replaces, so errors still point there.
"""

from __future__ import annotations

from ..ir import nodes as ir
from ..ir.visit import rewrite
from ._program import map_expressions

DRAW = "_z"  # the draw's name; a user's names cannot start with an underscore-z clash (locals are scoped)


def expect_form(node: ir.VIObjective) -> ir.Expect:
    """The ``Expect`` that ``node`` (elbo, iwae or renyi) stands for."""
    span = node.span
    weight = ir.Prim("subtract", (ir.LogDensity("model", DRAW, span=span),
                                  ir.LogDensity("guide", DRAW, span=span)), span=span)
    reduce, alpha = ("mean", 0.0) if node.kind == "elbo" else ("renyi", node.alpha)
    return ir.Expect(node.particles, (ir.DrawGuide(DRAW, span=span),), weight, reduce, alpha, span=span)


def lower_vi_objectives(program: ir.Program) -> ir.Program:
    return map_expressions(program, lambda e: rewrite(e, {ir.VIObjective: expect_form}))
