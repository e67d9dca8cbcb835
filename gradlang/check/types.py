"""Declared types: element types for data, domains for parameters (NumPyro's ``biject_to``)."""

from __future__ import annotations

import numpy as np
import numpyro.distributions.constraints as C

from ..errors import TypeError_, choice_help
from ..ir import nodes as ir
from ..syntax import ast

ELEMENT_TYPES = ("real", "int", "bool")

# domain word -> (number of arguments, NumPyro constraint factory, the set in words)
DOMAINS = {
    "real": (0, lambda: C.real, "the real line"),
    "positive": (0, lambda: C.positive, "(0, inf)"),
    "unit": (0, lambda: C.unit_interval, "(0, 1)"),
    "simplex": (0, lambda: C.simplex, "probability vectors: entries >= 0 summing to 1"),
    "interval": (2, lambda a, b: C.interval(a, b), "(a, b)"),
    "greater": (1, lambda a: C.greater_than(a), "(a, inf)"),
    "less": (1, lambda b: C.less_than(b), "(-inf, b)"),
    "ordered": (0, lambda: C.ordered_vector, "increasing vectors"),
    "positive_ordered": (0, lambda: C.positive_ordered_vector, "positive increasing vectors"),
    "lower_cholesky": (0, lambda: C.lower_cholesky, "lower-triangular with a positive diagonal"),
    "corr_cholesky": (0, lambda: C.corr_cholesky, "Cholesky factors of correlation matrices"),
    "positive_definite": (0, lambda: C.positive_definite, "symmetric positive-definite matrices"),
}
# Domains whose values are vectors or matrices: the least number of dims they need.
_MIN_RANK = {"simplex": 1, "ordered": 1, "positive_ordered": 1, "lower_cholesky": 2,
             "corr_cholesky": 2, "positive_definite": 2}


def constraint(domain: ir.Domain):
    """The NumPyro constraint of a domain; ``biject_to`` of it maps R^n onto the domain."""
    return DOMAINS[domain.name][1](*domain.args)


def domain_of(t: ast.Type, const_value, where: str) -> ir.Domain:
    """Resolve a parameter's domain word and its (constant) arguments."""
    if t.base in ("int", "bool"):
        raise TypeError_(f"{where} cannot be {t.base}: parameters are real-valued", t.span,
                         "use real, or a constrained domain such as positive or interval(a, b)")
    if t.base not in DOMAINS:
        raise TypeError_(f"unknown domain '{t.base}' for {where}", t.span, choice_help(t.base, DOMAINS))
    arity = DOMAINS[t.base][0]
    if t.kwargs:
        raise TypeError_(f"the bounds of domain '{t.base}' are positional", t.kwargs[0].span,
                         {2: "write interval(0, 1)", 1: f"write {t.base}(0)"}.get(arity, f"write {t.base}"))
    if len(t.args) != arity:
        raise TypeError_(f"domain '{t.base}' takes {arity} argument{'s' if arity != 1 else ''}, "
                         f"not {len(t.args) + len(t.kwargs)}", t.span,
                         {2: "write interval(low, high)", 1: f"write {t.base}(bound)"}.get(arity,
                                                                                       f"write {t.base}"))
    args = []
    for a in t.args:
        value = const_value(a)
        if np.ndim(value) != 0:
            raise TypeError_(f"a bound of domain '{t.base}' must be a number", a.span, None)
        args.append(float(value))
    args = tuple(args)
    if t.base == "interval" and not args[0] < args[1]:
        raise TypeError_(f"interval({args[0]:g}, {args[1]:g}) is empty", t.span,
                         "the lower bound must be below the upper bound")
    return ir.Domain(t.base, args)


def check_rank(domain: ir.Domain, shape: tuple, t: ast.Type, where: str) -> None:
    need = _MIN_RANK.get(domain.name, 0)
    if len(shape) < need:
        example = f"{domain.name}[K]" if need == 1 else f"{domain.name}[K, K]"
        raise TypeError_(f"domain '{domain.name}' needs at least {need} dim{'s' if need > 1 else ''} "
                         f"for {where}", t.span, f"write e.g. {example}")
