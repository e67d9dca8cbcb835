"""Several prox terms on one parameter: the exact prox of their sum, where one is known.

This pass-side table decides, from the terms as written, whether and by which identity a pair
composes, so that the decision is in the IR and a pair that does not compose is a located error at
check time; the identities themselves are applied by ``lib/prox/compose.py`` at run time.

The prox of a sum is not the composition of the proxes in general; these identities make it so
(each with its condition; ``t`` the step, weights folded into the terms):

- ``fused``: ``c1 * norm1(x) + c2 * tv1d(x)`` -> soft-threshold after the TV prox (Friedman,
  Hastie, Hoefling & Tibshirani, Pathwise coordinate optimization, Ann. Appl. Stat. 2007, sec. 4).
- ``soft_threshold_then``: ``c1 * norm1(x) + g(x)`` with g separable, even and convex ->
  ``prox_g(soft_threshold(v, t c1))`` (Yu, On decomposing the proximal map, NeurIPS 2013, Thm. 4);
  a user's prox counts as one of an even, separable g when it is odd and elementwise, which is
  checked here at random points.
- ``then_nonneg``: ``g(x) + nonneg(x)`` with g separable and its prox monotone (every convex
  separable g) -> ``max(prox_g(v), 0)`` (Yu 2013, ibid.: the indicator of the orthant is separable
  and its projection commutes with a monotone scalar prox).
- ``scaled``: ``c * sumsq(x) + g(x)`` -> ``prox_g(v / (1 + 2 c t), t / (1 + 2 c t))`` (Parikh & Boyd,
  Proximal Algorithms, 2014, sec. 2.2, postcomposition with a quadratic).

Any other pair is a located error suggesting admm or pdhg, which split every term.
"""

from __future__ import annotations

import numpy as np

from ..errors import TypeError_
from ..ir import nodes as ir
from ..ir.plan import ComposedProx, ProxTerm

SEPARABLE = {"norm1", "sumsq", "elastic_net", "nonneg", "box"}
EVEN_SEPARABLE = {"sumsq", "elastic_net"}


def user_prox_is_odd_and_elementwise(decl: ir.ProxDecl, program: ir.Program) -> bool:
    """Whether the user's prox maps -v to -prox(v) and acts on each entry alone, at random points:
    the prox of an even, separable function does both."""
    from ..backend.evaluate import Evaluator

    rng = np.random.default_rng(0)
    v = rng.normal(scale=2.0, size=7).astype(np.float32)
    ev = Evaluator(program, {}, {}, program.consts, program.dims)

    def prox(x, t=0.3):
        return np.asarray(ev.eval(decl.body, {decl.params[0]: x, decl.params[1]: np.float32(t)}), np.float64)

    whole = prox(v)
    if whole.shape != v.shape:
        return False
    odd = np.allclose(prox(-v), -whole, atol=1e-6)
    elementwise = np.allclose([prox(v[i:i + 1])[0] for i in range(len(v))], whole, atol=1e-6)
    return bool(odd and elementwise)


def _rule(a: ProxTerm, b: ProxTerm, program: ir.Program) -> tuple[str, tuple] | None:
    """The rule composing ``a`` and ``b`` and the order the proxes apply, or None."""
    pair = {a.fn, b.fn}
    if pair == {"norm1", "tv1d"}:
        return "fused", tuple(sorted((a, b), key=lambda t: t.fn != "tv1d"))
    if "sumsq" in pair and a.fn != b.fn:
        other = b if a.fn == "sumsq" else a
        return "scaled", (a if a.fn == "sumsq" else b, other)
    if "nonneg" in pair:
        other = b if a.fn == "nonneg" else a
        separable = other.fn in SEPARABLE or (other.user and user_prox_is_odd_and_elementwise(
            program.proxes[other.fn], program))
        if separable:
            return "then_nonneg", (other, a if a.fn == "nonneg" else b)
    if "norm1" in pair:
        other = b if a.fn == "norm1" else a
        even = other.fn in EVEN_SEPARABLE or (other.user and user_prox_is_odd_and_elementwise(
            program.proxes[other.fn], program))
        if even:
            return "soft_threshold_then", (a if a.fn == "norm1" else b, other)
    return None


def composable(group: list[ProxTerm], program: ir.Program) -> bool:
    """Whether the prox terms of one parameter have an exact prox together (one term always has)."""
    return len(group) == 1 or (len(group) == 2 and _rule(group[0], group[1], program) is not None)


def compose_terms(terms: tuple[ProxTerm, ...] | list, program: ir.Program) -> tuple[ComposedProx, ...]:
    """One ``ComposedProx`` for each parameter with two prox terms; three or more, or a pair no
    identity covers, is a located error."""
    by_param: dict[str, list[ProxTerm]] = {}
    for t in terms:
        by_param.setdefault(t.param, []).append(t)
    out = []
    for param, group in by_param.items():
        if len(group) == 1:
            continue
        found = _rule(group[0], group[1], program) if len(group) == 2 else None
        if found is None:
            names = " + ".join(f"{t.fn}({param})" for t in group)
            raise TypeError_(f"{names}: the prox of this sum is not known in closed form", group[1].span,
                             "method = admm or pdhg split the terms; or merge them into one function with "
                             "its own `prox` declaration")
        rule, order = found
        out.append(ComposedProx(param, order, rule, span=group[0].span))
    return tuple(out)
