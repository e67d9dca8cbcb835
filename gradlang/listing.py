"""``gradlang list KIND``: names, one-line summaries and citations from the registries."""

from __future__ import annotations

import inspect

from .check.types import DOMAINS
from .errors import ConfigError, choice_help
from .lib.builtins import FUNCTIONS
from .lib.distributions import DISTRIBUTIONS
from .lib.optimizers import OPTIMIZERS
from .lib.schedules import SCHEDULES
from .passes import PIPELINE


def _first_line(obj) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.splitlines()[0] if doc else ""


def _first_sentence(obj) -> str:
    """The first sentence of a docstring's first paragraph (which may wrap over several lines)."""
    paragraph = " ".join((inspect.getdoc(obj) or "").split("\n\n")[0].split())
    return paragraph.split(". ")[0].rstrip(".:")


def _registry(kind: str):
    """The registry of the newer kinds (imported when asked for: they pull in their libraries)."""
    if kind == "bilevel":
        from .lib.bilevel import BILEVEL as reg
    elif kind == "aggregator":
        from .lib.aggregators import AGGREGATORS as reg
    elif kind in ("proxe", "prox"):
        from .lib.prox import PROXES as reg
    elif kind == "constraint":
        from .lib.constraints import CONSTRAINT_METHODS as reg
    else:
        from .backend.solvers import SOLVERS as reg
    return reg


def _signature(value) -> str:
    """An entry's arguments: a function's, or a prox class's fields (its constructor)."""
    try:
        return str(inspect.signature(value))
    except (TypeError, ValueError):
        return "(...)"


def listing(kind: str) -> list[tuple[str, str, str]]:
    written = kind
    kind = kind.rstrip("s") if kind not in ("passes", "pass") else "pass"
    if kind in ("optimizer", "schedule", "estimator", "family", "familie"):
        from .lib.estimators import ESTIMATORS
        from .lib.families import FAMILIES

        reg = {"optimizer": OPTIMIZERS, "schedule": SCHEDULES, "estimator": ESTIMATORS}.get(kind, FAMILIES)
        return [(e.name + str(inspect.signature(e.value)), e.summary, e.cite) for e in reg.entries()]
    if kind in ("bilevel", "aggregator", "proxe", "prox", "constraint", "solver"):
        reg = _registry(kind)
        return [(e.name + _signature(e.value), e.summary, e.cite) for e in reg.entries()]
    if kind == "distribution":
        return [(n, _first_line(c).split(".")[0], "NumPyro (Phan et al., 2019)") for n, c in sorted(DISTRIBUTIONS.items())]
    if kind == "builtin":
        return [(n, _first_line(f)[:80], "") for n, f in sorted(FUNCTIONS.items())]
    if kind == "domain":
        return [(n + {0: "", 1: "(a)", 2: "(a, b)"}[arity], words, "NumPyro biject_to(constraint)")
                for n, (arity, _, words) in DOMAINS.items()]
    if kind == "pass":
        return [(p.__name__, _first_sentence(inspect.getmodule(p)), "") for p in PIPELINE]
    kinds = list(KINDS)
    raise ConfigError(f"unknown kind '{written}'", None, choice_help(written, kinds))


# what `gradlang list` (no kind) prints: each kind, what it lists and where the names are used
KINDS = {
    "optimizers": "optimizer = adam(lr = 0.01), chain(...)",
    "schedules": "lr = cosine(0.01, 2000)",
    "estimators": "a ~ bernoulli(p) via score(baseline = rloo)",
    "families": "guide = mean_field, or z ~ mean_field in a guide",
    "distributions": "x ~ normal(0, 1): NumPyro's, by snake_case name",
    "builtins": "sum, logsumexp, cholesky, ...: NumPy's names",
    "domains": "param s: positive[D]",
    "passes": "the compiler's passes: compile F --emit ir:PASS",
    "bilevel": "solve { bilevel = implicit(solver = cg) }: hypergradients of lower blocks",
    "aggregators": "solve { aggregator = upgrad }: Jacobian descent of several objectives",
    "proxes": "minimize f(x) + 0.1 * norm1(x) under method = fista: prox terms and simple sets",
    "constraints": "solve { constraints = augmented_lagrangian(rho = 1) }: how subject to is met",
    "solvers": "solve { method = fista }: the solvers a plan runs with",
}


def kinds() -> list[tuple[str, str, str]]:
    """The kinds ``gradlang list KIND`` takes: name, what it lists, how many entries it has."""
    return [(kind, what, str(len(listing(kind)))) for kind, what in KINDS.items()]
