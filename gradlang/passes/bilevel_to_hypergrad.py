"""Each lower block becomes an inner solve and its hypergradient method.

A lower block ``lower NAME { ...; solve { optimizer = sgd(lr = 0.1); steps = 100 } }`` is solved at
every upper step by its own optimizer (checked here against the optimizer registry, schedules bound
to its steps), warm-started from the last upper step's solution.  The derivative of its solution
with respect to the upper parameters comes from the hypergradient method: ``solve { bilevel = ... }``
in the block's own solve, else in the program's, else ``implicit`` (a ``gradlang list bilevel``
entry; a wrong name or argument is a located error here).  The method is written into the IR with
every argument, defaults included:

    lower inner {
      ...
      inner solve: optimizer=sgd(lr=0.1) steps=100
      hypergradient implicit(solver=cg, iters=30, tol=1e-06, direct=500, power=20)
    }

A lower block with ``subject to`` needs a method that handles lower constraints (``lv_hba``,
``value_gap``, ``implicit`` through the KKT system): another is a located error at the first
constraint suggesting ``lv_hba``.  ``bo_rep``'s direction is the normalised momentum, its step
``lr · m/‖m‖``: the upper optimizer must be ``sgd`` (a located error otherwise) and is written as
``sgd(lr = 0.01)`` when the program names none.  ``lv_hba`` (and ``value_gap`` on a constrained
lower level) step (x, y) jointly by ``alpha`` and hand x the gradient mapping: ``alpha`` is the
upper ``sgd``'s lr when that is written and alpha is not, and ``sgd(lr = alpha)`` is written when
the program names no optimizer.

A nested block (``lower inner`` inside ``lower mid``, in the IR as ``mid.inner``) takes the method
written in its own solve, else in the nearest enclosing block's, else the program's: it says how
the block above differentiates its solution (the level above's objective is then itself a bilevel
objective).  Every block of a nested program takes ``implicit`` (the implicit function theorem at
each level: a nested fixed point) or ``unroll`` (differentiation through every level's iterations),
which give a differentiable solution map (``solution``), and no ``subject to``; another is a located
error naming implicit.

Several upper objectives (``minimize { a: ..., b: ... }``) with an aggregator other than ``mean`` or
``sum`` need each objective's hypergradient (the method's ``rows``: implicit with one adjoint solve
an objective, through the KKT system where the lower level is constrained; unroll, unconstrained):
another method is a located error.

For now a bilevel program has the gradient method, no minibatches and deterministic lower levels,
and all its top lower blocks share one method; each of these is a located error otherwise.
"""

from __future__ import annotations

from dataclasses import replace

from ..backend.optimizer import build_optimizer, uses_total_steps
from ..check.config import validate_optimizer
from ..check.lower import parent
from ..errors import UnsupportedError
from ..ir import nodes as ir
from ..ir.plan import LowerIR, OptimizerSpec
from ..ir.visit import walk
from .choose_optimizer import bind_steps
from .objectives_to_aggregate import LINEAR

DEFAULT = "implicit"


def build_method(cfg: ir.ConfigValue):
    """The registry's bilevel method that ``cfg`` names, built with its arguments (a located error
    if the name or the arguments are wrong)."""
    from ..lib.bilevel import BILEVEL

    return BILEVEL.build(cfg, "bilevel method", "bilevel")


def written(method, cfg: ir.ConfigValue) -> ir.ConfigValue:
    """The method with every argument as a config value (what ``--emit`` shows)."""
    from ..lib.bilevel import settings

    def value(v):
        return ir.ConfigValue("word" if isinstance(v, str) else "number", v, span=cfg.span)

    # an argument left at None (unroll's steps: the lower level's own) is not written
    kwargs = tuple((k, value(v)) for k, v in settings(method).items() if v is not None)
    return ir.ConfigValue("call", cfg.value, (), kwargs, span=cfg.span)


def _refuse(program: ir.Program, first: LowerIR) -> None:
    solve = program.solve
    spans = getattr(solve, "spans", {})
    if getattr(solve, "method", "gradient") != "gradient":
        raise UnsupportedError(f"method {solve.method} with lower blocks is not supported yet", spans.get("method"),
                               "a bilevel program takes method = gradient (the default)")
    if getattr(solve, "batch", None):
        raise UnsupportedError("minibatches (batch) with lower blocks are not supported yet", spans.get("batch"),
                               "leave batch out: each lower solve uses the full data")
    for low in program.lowers.values():
        if any(isinstance(n, (ir.Expect, ir.VIObjective)) for n in walk(low.objective.value)):
            raise UnsupportedError("a Monte-Carlo lower objective is not supported yet", low.objective.span,
                                   "write the lower level's objective without expect")
        for p in low.params:
            if isinstance(p.init, ir.Dist):
                raise UnsupportedError("a lower parameter drawn from a distribution is not supported yet",
                                       p.init.span, "start it at a number")


def bilevel_to_hypergrad(program: ir.Program) -> ir.Program:
    if not program.lowers:
        return program
    _refuse(program, next(iter(program.lowers.values())))
    upper = program.solve.bilevel if "bilevel" in getattr(program.solve, "spans", {}) else None
    lowers, first = {}, None
    for name in _preorder(list(program.lowers)):  # a block before the blocks nested in it
        low = program.lowers[name]
        cfg = _written_method(program, name, upper)
        chosen = cfg is None
        cfg = cfg or ir.ConfigValue("word", DEFAULT, span=low.span)
        built = build_method(cfg)
        if parent(name) is not None or any(parent(n) == name for n in program.lowers):
            _nestable(program, name, low, built, cfg)
        if parent(name) is not None:  # a nested block's method: how the block above differentiates it
            steps, opt = low.solve.steps, low.solve.optimizer
            validate_optimizer(build_optimizer(opt, steps), opt, steps)
            spec = OptimizerSpec(bind_steps(opt, steps), uses_total_steps(opt), span=opt.span)
            lowers[name] = replace(low, optimizer=spec, method=written(built, cfg), chosen=chosen)
            continue
        _several_objectives(program, built, cfg)
        if low.constraints and not getattr(built, "constrained", False):
            raise UnsupportedError(f"bilevel method {cfg.value} with a constrained lower level "
                                   f"(lower {name} has subject to) is not supported",
                                   low.constraints[0].span,
                                   "use bilevel = lv_hba (constraints coupled to the upper parameters) or "
                                   "value_gap; implicit differentiation needs an unconstrained lower level")
        if _steps_jointly(built, program):
            built = _alpha_from_upper(built, cfg, program.solve)
        method = written(built, cfg)
        if first is not None and printed(method) != printed(first):
            raise UnsupportedError(f"lower {name} takes another bilevel method than the first lower block",
                                   cfg.span, f"the first takes {printed(first)}: one method for all lower "
                                   "blocks, for now")
        first = method
        steps, opt = low.solve.steps, low.solve.optimizer
        validate_optimizer(build_optimizer(opt, steps), opt, steps)
        spec = OptimizerSpec(bind_steps(opt, steps), uses_total_steps(opt), span=opt.span)
        lowers[name] = replace(low, optimizer=spec, method=method, chosen=chosen)
    program = program.replace(lowers={name: lowers[name] for name in _preorder(list(lowers))})
    if first.value == "bo_rep":
        return _normalised_steps(program, first)
    if _steps_jointly(build_method(first), program) and "optimizer" not in program.solve.spans:
        alpha = dict(first.kwargs)["alpha"]
        sgd = ir.ConfigValue("call", "sgd", (), (("lr", ir.ConfigValue("number", alpha.value)),))
        return program.replace(solve=replace(program.solve, optimizer=sgd))
    return program


def _preorder(names: list[str]) -> list[str]:
    """The blocks with each nested block after the block it is nested in (``mid``, ``mid.inner``),
    in the order written otherwise."""
    out: list[str] = []

    def visit(name: str) -> None:
        out.append(name)
        for child in names:
            if parent(child) == name:
                visit(child)

    for name in names:
        if parent(name) is None:
            visit(name)
    return out


def _written_method(program: ir.Program, name: str, upper):
    """The method written for block ``name``: in its own solve, else in the solve of the nearest block
    it is nested in that writes one, else in the program's (None when none is written)."""
    block = name
    while block is not None:
        low = program.lowers[block]
        if "bilevel" in low.solve.spans:
            return low.solve.bilevel
        block = parent(block)
    return upper


def _nestable(program: ir.Program, name: str, low: LowerIR, method, cfg: ir.ConfigValue) -> None:
    """A block nested in another, or with blocks nested in it, is differentiated through a solution
    map of the level below (``solution``: implicit or unroll) and has no subject to, for now."""
    if not hasattr(method, "solution"):
        raise UnsupportedError(f"bilevel method {cfg.value} with nested lower blocks (lower {name}) is not "
                               "supported", cfg.span,
                               "use bilevel = implicit (or unroll) in the blocks of a nested bilevel program")
    if low.constraints:
        raise UnsupportedError(f"a subject to in a nested bilevel program (lower {name}) is not supported yet",
                               low.constraints[0].span,
                               "move the constraint out of the nested blocks, or nest no lower block in it")


def _several_objectives(program: ir.Program, method, cfg: ir.ConfigValue) -> None:
    """Several upper objectives with an aggregator other than mean or sum: Jacobian descent needs each
    objective's own hypergradient, the method's ``rows`` (implicit, also through the KKT system of a
    constrained lower level; unroll, which has no lower constraints)."""
    plan = program.aggregate
    if plan is None or plan.aggregator.value in LINEAR:
        return
    where = program.objectives[1].span if len(program.objectives) > 1 else program.objectives[0].span
    if not hasattr(method, "rows"):
        raise UnsupportedError(f"several upper objectives with bilevel method {cfg.value} are not supported",
                               where, f"use bilevel = implicit (or unroll), which give each objective's "
                               f"hypergradient for the aggregator {plan.aggregator.value}, or aggregator = mean")
    if any(low.constraints for low in program.lowers.values()) and not getattr(method, "constrained", False):
        raise UnsupportedError(f"several upper objectives with bilevel method {cfg.value} and a constrained lower "
                               "level are not supported", where,
                               "use bilevel = implicit (through the KKT system), or aggregator = mean")


def _steps_jointly(method, program: ir.Program) -> bool:
    """Whether the method takes a projected step of size ``alpha`` on (x, y) and hands x its gradient
    mapping (lv_hba always, value_gap with lower constraints): ``sgd(lr = alpha)`` is its x step."""
    constrained = any(low.constraints for low in program.lowers.values())
    return hasattr(method, "steps_jointly") and method.steps_jointly(constrained)


def _alpha_from_upper(method, cfg: ir.ConfigValue, solve):
    """``alpha`` unwritten and the upper optimizer ``sgd(lr = η)`` with a number: ``alpha = η``, so
    that x and y take the same step (the method as published)."""
    opt = solve.optimizer
    lr = dict(opt.kwargs).get("lr") if opt.kind == "call" else None
    if "alpha" in dict(cfg.kwargs) or "optimizer" not in solve.spans or opt.value != "sgd" \
            or lr is None or lr.kind != "number":
        return method
    return replace(method, alpha=float(lr.value))


BO_REP_OPTIMIZER = ir.ConfigValue("call", "sgd", (), (("lr", ir.ConfigValue("number", 0.01)),))


def _normalised_steps(program: ir.Program, method: ir.ConfigValue) -> ir.Program:
    """BO-REP's direction is the normalised momentum m/‖m‖, its step ``η m/‖m‖`` with ``sgd(lr = η)``:
    the upper optimizer must be plain sgd, which is written (lr 0.01) when the program names none."""
    solve = program.solve
    if "optimizer" not in solve.spans:
        return program.replace(solve=replace(solve, optimizer=BO_REP_OPTIMIZER))
    opt = solve.optimizer
    if opt.value != "sgd":
        raise UnsupportedError(f"bilevel = bo_rep takes its upper step with sgd, not {opt.value}", opt.span,
                               "BO-REP's step is lr * m / |m| (normalised momentum): write optimizer = sgd(lr = 0.01)")
    return program


def printed(cfg: ir.ConfigValue) -> str:
    from ..ir.printer import config

    return config(cfg)

