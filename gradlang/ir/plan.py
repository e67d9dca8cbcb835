"""The plan: the decisions the passes write into the IR (``gradlang list passes``).

Each node records one kind of choice, made by one pass and read by the backend: how several
objectives aggregate (objectives_to_aggregate), the objective split into a smooth part and prox
terms (split_prox), the constraints' method (constraints_to_method), a lower level and its
hypergradient (the checker; bilevel_to_hypergrad), the optimizer (choose_optimizer) and a VI fit's
settings (choose_vi_defaults).  The printer shows each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .nodes import Node

if TYPE_CHECKING:  # the fields' types
    from .nodes import ConfigValue, Expr, ObjectiveIR, ParamDecl


@dataclass(frozen=True)
class Aggregate(Node):
    """Several objectives as one vector objective: the loss of entry i is ``signs[i] * value_i``
    (maximised ones negated) and ``aggregator`` turns the vector (or its Jacobian) into the step."""

    names: tuple[str, ...]
    signs: tuple[float, ...]
    aggregator: ConfigValue


@dataclass(frozen=True)
class ProxTerm(Node):
    """A term ``weight * f(param, *args)`` of the objective handled by its proximal operator:
    ``f`` a prox entry (``gradlang list proxes``) or a user ``prox`` declaration (``user``)."""

    param: str
    weight: Expr
    fn: str
    args: tuple[Expr, ...] = ()
    user: bool = False
    expr: Expr | None = None  # the term as written (its value, for the objective as written)
    linear: Expr | None = None  # K of a term f(K @ param) (admm, pdhg); None: f(param)
    linear_side: str = "left"  # K @ param ("left") or param @ K ("right")
    offset: Expr | None = None  # c of a term f(K @ param + c) (admm, pdhg): data, as written (``- b`` negated)


@dataclass(frozen=True)
class ComposedProx(Node):
    """Several prox terms on one parameter whose sum has an exact prox: ``rule`` names the identity
    (``lib/prox/compose.py``) that composes them, in the order applied."""

    param: str
    terms: tuple[ProxTerm, ...]
    rule: str


@dataclass(frozen=True)
class ProxSplit(Node):
    """The objective as ``smooth + sum of prox terms`` (split_prox), for a proximal method."""

    smooth: Expr
    terms: tuple[ProxTerm, ...]
    composed: tuple[ComposedProx, ...] = ()
    dual: tuple[ProxTerm, ...] = ()  # terms split off with a dual variable each (admm, pdhg)
    options: tuple = ()  # the method's settings, decided: (("rho", 1.0), ("x_update", "cholesky"), ...)


@dataclass(frozen=True)
class ConstraintIR(Node):
    """One constraint of ``subject to``, as ``g <= 0`` (``kind = "le"``) or ``g == 0`` (``"eq"``),
    elementwise for a vector: ``g = lhs - rhs`` (``rhs - lhs`` for ``>=``).  ``label``: the user's,
    or the constraint's source text."""

    label: str
    kind: str
    g: Expr
    written: Expr  # the comparison as written


@dataclass(frozen=True)
class Projection(Node):
    """Constraints on one parameter met by projecting it, after each update, onto a simple set:
    ``set`` a prox registry indicator (``simplex``, ``box``, ``l2_ball``, ...) with ``args``."""

    param: str
    set: str
    args: tuple[Expr, ...]
    labels: tuple[str, ...]


@dataclass(frozen=True)
class ConstraintsPlan(Node):
    """The decision of constraints_to_method: projections, and the constraints left to ``method``
    (``penalty``, ``augmented_lagrangian``, ``lagrangian``: a registry entry with its settings),
    each kept with a multiplier (a dual variable) or a penalty in the solver state."""

    projections: tuple[Projection, ...]
    rest: tuple[ConstraintIR, ...]
    method: ConfigValue | None


@dataclass(frozen=True)
class LowerIR(Node):
    """A lower level ``lower NAME { param ...; minimize ...; solve { ... } }``: its parameters
    (declared as ``NAME.p``, referred to everywhere as ``Ref("lower", "NAME.p")``), its objective
    (the upper parameters are fixed inputs there), its solve settings.  The pass
    bilevel_to_hypergrad writes the inner solve's ``optimizer`` and the hypergradient ``method``
    (a ``gradlang list bilevel`` entry with every argument; ``chosen`` when the user wrote none)."""

    name: str
    params: tuple[ParamDecl, ...]
    objective: ObjectiveIR
    solve: Any  # SolveSettings of the block's own solve { ... }
    optimizer: Any = None  # OptimizerSpec of the inner solve (bilevel_to_hypergrad)
    method: ConfigValue | None = None  # the hypergradient method (bilevel_to_hypergrad)
    chosen: bool = False
    constraints: tuple[ConstraintIR, ...] = ()  # the block's subject to: g(x, y) <= 0 / == 0 (x upper, y its params)


@dataclass(frozen=True)
class OptimizerSpec(Node):
    """The optimizer expression, checked against the registries.  A schedule whose length is not
    written has ``steps`` bound to the solve's step count (a ConfigValue of kind ``steps``), so a
    run with another step count rebinds it.  ``raveled``: the optimizer runs on the parameters
    raveled into one vector, its state too (``choose_optimizer.runs_raveled``)."""

    config: ConfigValue
    uses_steps: bool = False
    raveled: bool = False  # the update runs on the parameters raveled into one vector (Jacobian descent)


@dataclass(frozen=True)
class VIDefaults(Node):
    """The settings choose_vi_defaults chose for a program with a guide that wrote no optimizer,
    steps or tol: how the guide starts (``laplace``: at the Laplace approximation, fitted in its
    frame; ``None`` for a family without one), the horizon of the iterate average reported, the
    stopping rule (the windowed mean ELBO's change within z standard errors), whether particles
    whose log joint or gradient is not finite are rejected (``backend/finite_particles.py``), and
    how the loop is compiled (``fast``: for a short run, ``backend/compile_options.py``)."""

    start: str | None
    average: int
    every: int
    z: float
    reject_nonfinite: bool = False  # Monte-Carlo particles with a non-finite value or gradient dropped
    loop_compile: str = "optimized"  # "fast": the loop compiled for a short run (compile_options.fast_compile)
