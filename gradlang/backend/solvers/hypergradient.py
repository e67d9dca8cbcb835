"""The hypergradient direction of a bilevel program: inner solves, then the plan's method.

For upper parameters ``x`` and the lower blocks' parameters ``y`` (``NAME.p``), the upper loss is
``F(x, y)`` (the program's objective with ``NAME.p`` bound to ``y``) and the lower loss is
``G(x, y) = Σ_b G_b(x, y_b)``, block ``b``'s objective (negated where it maximises).  The direction
hands the method of the plan (``bilevel_to_hypergrad``: an entry of ``gradlang.lib.bilevel``) a
``Problem`` with ``upper``, ``lower`` and ``solve``; ``solve`` runs every block's own optimizer
(``lower NAME { solve { optimizer; steps } }``) on a function of ``y`` in one ``lax.scan``
(a block with fewer steps than another stops early), differentiably, so that ``unroll`` can
differentiate through it.  The method returns the upper loss, the hypergradient and its next
state; the state (holding the lower solution ``"y"``, warm-started across upper steps) lives in the
solver's running state under ``"bilevel"``, and ``reported`` gives the lower solution that the
result shows as ``NAME.p``.  All of it is in the unconstrained coordinates of each parameter's
domain.

A nested lower block (``lower inner`` inside ``lower mid``, ``mid.inner`` in the IR) is no
unknown of the method: wherever the objective of the block above it (or an upper objective reading
``mid.inner.c``) is evaluated, it is solved there by its own optimizer from its last solution, as
a solution map of everything above it that JAX differentiates the way its method says (the method's
``solution``: implicit through a ``custom_jvp``, unroll through its iterations).  So the level
above minimises its reduced objective ``G(x, y, z*(x, y))`` with its hypergradient as gradient,
and the upper's method differentiates that level's solution, second derivatives included.  The
nested solutions at the new lower solution are kept under ``"bilevel_nested"`` (the next step's
start) and reported as ``mid.inner.c``.

Several upper objectives with an aggregator other than mean or sum: the method's ``rows`` give the
Jacobian of the objectives' losses through the lower solution, one row an objective, and the
direction is the aggregator's combination of them (its state under ``"aggregator"``).

A block's ``subject to`` is ``Problem.constraints``: every constraint's ``g(x, y)`` in one vector
(``<= 0``, or ``== 0`` where the static mask says so), for the methods that handle lower
constraints.  Two conditions are tracked in the method's state during the run and reported as a
``SingularLowerWarning`` at the source when the run's lower solution is read (``reported``):
``implicit``'s worst relative residual of its linear solve above ``SINGULAR`` (a singular lower
Hessian: a lower level with a set of solutions), at the lower block; and a lower constraint active
with a zero multiplier (no stable active set for the KKT hypergradient), at the constraint.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from ...check.lower import parent
from ...check.types import constraint
from ...errors import TypeError_
from ...ir.visit import refs
from ..build import Model
from ..optimizer import build_optimizer

STATE = "bilevel"  # the method's state in the direction's running state
NESTED = "bilevel_nested"  # the nested lower blocks' last solutions (their warm start)
AGGREGATOR = "aggregator"  # several upper objectives: the aggregator's state (as jacobian.STATE)
OWN = (STATE, NESTED, AGGREGATOR)  # the direction's entries of the running state, not the estimators'
SINGULAR = 1e-2  # an implicit linear solve's relative residual above which the run warns


class SingularLowerWarning(UserWarning):
    """The implicit hypergradient's linear system was not solved: a singular lower Hessian."""


def _warn(text: str, span) -> None:
    """A rendered diagnostic as a Python warning located in the program (its file and line, so
    that the warnings filter and display name the program, not this module)."""
    import warnings

    where = str(span)
    text = text[len(where) + 2:] if text.startswith(where + ": ") else text
    name = span.source.name if span.source is not None else "<string>"
    warnings.warn_explicit(text, SingularLowerWarning, filename=str(name), lineno=span.line)


class Problem:
    """The bilevel problem on one batch of data (``gradlang.lib.bilevel.Problem``)."""

    def __init__(self, direction: HypergradientDirection, data: dict, key, est: dict, x0=None, z0=None):
        self.direction, self.data, self.key, self.est = direction, data, key, est
        self.x0 = x0  # the upper parameters at the start (for a method's init)
        self.z0 = z0 or {}  # the nested blocks' solutions of the last upper step (their warm start)
        self.ranges: list = []  # each lower constraint's rows in constraints(), program order (set by it)
        self.steps = max(steps for _, _, steps in direction.inner)

    def upper(self, x, y):
        """``(F(x, y), (values, estimators' state))``, the loss as ``Model.loss_and_values`` gives it
        (with nested lower blocks, ``F`` at their solutions for ``(x, y)``)."""
        values = {**x, **y}
        if self.direction.upper_reads_nested:
            values.update(self.nested(values))
        return self.direction.model.loss_and_values(values, self.data, self.key, self.est)

    def terms(self, x, y):
        """``(l(x, y), (loss, (values, state)))``: each upper objective's loss (its value, negated where
        it maximises), what the rows of a vector objective's hypergradient Jacobian differentiate."""
        loss, (values, new) = self.upper(x, y)
        signs = jnp.asarray(self.direction.model.program.aggregate.signs, jnp.float32)
        return signs * values, (loss, (values, new))

    def lower(self, x, y):
        """``G(x, y)``: the top lower blocks' objectives, each at its nested blocks' solutions."""
        total = 0.0
        for block, _, _ in self.direction.inner:
            total = total + self.objective(block, {**x, **_part(y, block)})
        return total

    def objective(self, block: str, values: dict):
        """Lower block ``block``'s objective (negated where it maximises) at ``values`` (the upper
        parameters, the enclosing blocks' and its own), its nested blocks at their solutions."""
        model = self.direction.model
        low = model.program.lowers[block]
        values = {**values, **self.nested(values, block)}
        value = jnp.asarray(model.evaluator(model.constrain(values), self.data).eval(low.objective.value), jnp.float32)
        return value if low.objective.sense == "minimize" else -value

    def nested(self, values: dict, block: str | None = None) -> dict:
        """The solutions of the blocks nested in ``block`` (in the top blocks when None) and of theirs,
        as functions of ``values``: each the argmin of its objective from its last solution, by its
        own optimizer, differentiable as its method says (``solution``: implicit or unrolled)."""
        out = {}
        for child, opt, steps, method in self.direction.nested:
            if parent(child) != block and not (block is None and parent(child) in self.direction.top):
                continue
            start = _part(self.z0, child, own_only=True)

            def objective(p, v, child=child):
                return self.objective(child, {**p, **v})

            def solve(fn, v0, steps_=None, opt=opt, steps=steps, child=child):
                return solve_blocks(((child, opt, steps),), fn, v0, steps_)

            sol = method.solution(objective, solve, steps, values, start)
            out.update(sol)
            out.update(self.nested({**values, **sol}, child))
        return out

    @property
    def constrained(self) -> bool:
        return any(low.constraints for low in self.direction.model.program.lowers.values())

    def constraints(self, x, y):
        """``(g, equality)``: every lower block's constraint values ``g(x, y)`` flattened into one
        vector (``<= 0`` where ``equality`` is False, ``== 0`` where True; a NumPy mask, static)."""
        model = self.direction.model
        ev = model.evaluator(model.constrain({**x, **y}), self.data)
        values, equality, self.ranges = [], [], []
        for low in model.program.lowers.values():
            for c in low.constraints:
                g = jnp.ravel(jnp.asarray(ev.eval(c.g), jnp.float32))
                start = sum(v.shape[0] for v in values)
                self.ranges.append((start, start + g.shape[0]))  # the rows of each constraint
                values.append(g)
                equality.append(np.full(g.shape, c.kind == "eq"))
        if not values:
            return jnp.zeros((0,), jnp.float32), np.zeros((0,), bool)
        return jnp.concatenate(values), np.concatenate(equality)

    def opt_init(self, y):
        return {block: opt.init(_part(y, block)) for block, opt, _ in self.direction.inner}

    def solve(self, fn, y0, steps: int | None = None, state=None, after=None):
        """The blocks' optimizers on ``fn``; ``after(y)``, when given, is applied after each step (a
        projection onto the lower feasible set)."""
        return solve_blocks(self.direction.inner, fn, y0, steps, state, after)


def solve_blocks(inner: tuple, fn, y0, steps: int | None = None, state=None, after=None):
    """``(y, opt_state)``: ``steps`` (default: each block's own) steps of each block's optimizer
    (``inner``: (block, Optax transform, steps)) on ``fn`` from ``y0``, in one ``lax.scan``."""
    n = max(s for _, _, s in inner) if steps is None else steps
    state = {block: opt.init(_part(y0, block)) for block, opt, _ in inner} if state is None else state

    def body(carry, t):
        y, states = carry
        value, grads = jax.value_and_grad(fn)(y)
        new_y, new_states = dict(y), {}
        for block, opt, block_steps in inner:
            part, g = _part(y, block), _part(grads, block)
            value_fn = lambda p, y=y: fn({**y, **p})
            updates, s = opt.update(g, states[block], part, value=value, grad=g, value_fn=value_fn)
            moved = optax.apply_updates(part, updates)
            live = t < block_steps if steps is None else True  # a block with fewer steps stops
            new_y.update(jax.tree.map(lambda a, b, live=live: jnp.where(live, a, b), moved, part))
            new_states[block] = jax.tree.map(lambda a, b, live=live: jnp.where(live, a, b), s, states[block])
        if after is not None:
            new_y = after(new_y)
        return (new_y, new_states), None

    (y, state), _ = jax.lax.scan(body, (y0, state), jnp.arange(n, dtype=jnp.int32))
    return y, state


def _part(y: dict, block: str, own_only: bool = False) -> dict:
    """The entries of ``block``'s params (``block.p``; with ``own_only``, not its nested blocks')."""
    return {k: v for k, v in y.items()
            if k.startswith(block + ".") and not (own_only and "." in k[len(block) + 1:])}


class HypergradientDirection(eqx.Module):
    """``(loss, values, hypergradient, state)`` as ``Gradient`` returns them, for a bilevel program.

    With several upper objectives and an aggregator that is not linear (``aggregator``), the
    direction is the aggregator's combination of the rows of the hypergradient Jacobian, one row
    per objective (the method's ``rows``): Jacobian descent through the lower solution."""

    model: Model = eqx.field(static=True)
    method: Any = eqx.field(static=True)
    inner: tuple = eqx.field(static=True)  # (block, Optax transform, steps) per top lower block
    nested: tuple = eqx.field(static=True, default=())  # (block, Optax transform, steps, method) per nested block
    aggregator: Any = eqx.field(static=True, default=None)  # several objectives: the plan's aggregator

    @classmethod
    def of(cls, model: Model) -> HypergradientDirection:
        from ...passes.bilevel_to_hypergrad import build_method
        from ...passes.objectives_to_aggregate import LINEAR, build_aggregator

        lowers = list(model.program.lowers.values())
        top = [low for low in lowers if parent(low.name) is None]
        inner = tuple((low.name, build_optimizer(low.optimizer, low.solve.steps), low.solve.steps) for low in top)
        nested = tuple((low.name, build_optimizer(low.optimizer, low.solve.steps), low.solve.steps,
                        build_method(low.method)) for low in lowers if parent(low.name) is not None)
        plan = model.program.aggregate
        aggregator = None
        if plan is not None and plan.aggregator.value not in LINEAR:
            aggregator = build_aggregator(plan.aggregator)
        return cls(model, build_method(top[0].method), inner, nested, aggregator)

    @property
    def stochastic(self) -> bool:
        """Whether a step draws (a stochastic aggregator: random, graddrop, modo, sdmgrad)."""
        return self.aggregator is not None and bool(self.aggregator.stochastic)

    @property
    def top(self) -> tuple:
        return tuple(block for block, _, _ in self.inner)

    @property
    def upper_reads_nested(self) -> bool:
        """Whether an upper objective reads a nested block's solution (``mid.inner.c``)."""
        nested = {block for block, *_ in self.nested}
        return any(parent(r.name) in nested for o in self.model.program.objectives
                   for r in refs(o.value, "lower"))

    def init(self, u: dict, data: dict, est: dict) -> dict:
        start = self.initial_lower(data)
        y = {k: v for k, v in start.items() if parent(k) in self.top}
        z = {k: v for k, v in start.items() if parent(k) not in self.top}
        out = {**est, STATE: self.method.init(Problem(self, data, None, est, u, z), y)}
        if z:
            out[NESTED] = z
        if self.aggregator is not None:
            m = jax.eval_shape(lambda: Problem(self, data, None, est, u, z).terms(u, y)[0]).shape[0]
            flat, _ = ravel_pytree(u)
            out[AGGREGATOR] = self.aggregator.init(m, flat.shape[0], flat.dtype)
        return out

    def initial_lower(self, data: dict) -> dict:
        """The lower parameters' unconstrained initial values (zeros where no init is written)."""
        ev = self.model.evaluator({}, data)
        out = {}
        for low in self.model.program.lowers.values():
            for p in low.params:
                t, shape = self.model.transform(p.name), self.model.shape(p.name)
                if p.init is None:
                    out[p.name] = jnp.zeros(t.inverse_shape(shape), jnp.float32)
                    continue
                value = jnp.broadcast_to(jnp.asarray(ev.eval(p.init), jnp.float32), shape)
                inside = jnp.all(constraint(p.domain).check(value))
                if not isinstance(inside, jax.core.Tracer) and not bool(inside):
                    raise TypeError_(f"the initial value of {p.name} is outside its domain {p.domain}",
                                     p.init.span, "choose a value inside the domain, or leave the init out")
                out[p.name] = t.inv(value).astype(jnp.float32)
        return out

    def __call__(self, u, data, key, est):
        inner = {k: v for k, v in est.items() if k not in OWN}
        draw = key if self.model.stochastic else None
        problem = Problem(self, data, draw, inner, z0=est.get(NESTED))
        out = {}
        if self.aggregator is None:
            loss, (values, new), g, state = self.method.step(problem, u, est[STATE])
        else:  # Jacobian descent: the aggregator's combination of each objective's hypergradient
            (loss, (values, new)), J, state = self.method.rows(problem, u, est[STATE])
            _, unravel = ravel_pytree(u)
            rows = jax.vmap(lambda r: ravel_pytree(r)[0])(J)
            agg_key = jax.random.fold_in(key, 1) if key is not None and self.aggregator.stochastic else None
            d, out[AGGREGATOR] = self.aggregator(rows, est[AGGREGATOR], agg_key)
            g = unravel(d)
        if NESTED in est:  # the nested blocks' solutions at the new lower solution: next step's start
            y = self.method.reported(state)
            out[NESTED] = stop_tree(problem.nested({**u, **y}))
        return loss, values, g, {**new, STATE: state, **out}

    def check(self, state: dict) -> None:
        """Warnings at the source, once the run's state is concrete (``reported`` at the end of a
        run): ``implicit``'s worst linear-solve residual above ``SINGULAR`` (or not finite), at each
        lower block; a lower constraint that was active with a zero multiplier, at the constraint.
        Kept in the state during the run (no host call inside the loop, which would cost a step); the
        same warning read again (the state read twice) is shown once by Python's warnings filter."""
        worst, degenerate = state.get("worst_residual"), state.get("degenerate")
        if worst is not None and not isinstance(worst, jax.core.Tracer) and not float(worst) <= SINGULAR:
            self.warn_singular(float(worst))
        if degenerate is not None and not isinstance(degenerate, jax.core.Tracer):
            lowered = [(low.name, c) for low in self.model.program.lowers.values() for c in low.constraints]
            self.warn_degenerate([pair for pair, bad in zip(lowered, np.asarray(degenerate)) if bad])

    def warn_degenerate(self, pairs: list) -> None:
        """A warning at each lower constraint (block, constraint) of ``pairs``, active with a zero
        multiplier, where the lower solution is not differentiable and the KKT hypergradient is one
        of its one-sided derivatives."""
        from ...errors import Diagnostic

        for block, c in pairs:
            text = Diagnostic(f"the active set of lower {block} is not stable: constraint '{c.label}' is active "
                              "with a zero multiplier, where the implicit hypergradient through the KKT system "
                              "is one-sided", c.span,
                              "bilevel = lv_hba (or value_gap) needs no stable active set").render("warning")
            _warn(text, c.span)

    def warn_singular(self, residual: float) -> None:
        """A warning at the lower blocks' spans: the implicit linear system ``∇²_yy G v = ∇_y F`` was
        not solved (relative residual above ``SINGULAR``, or not finite): the lower Hessian is
        singular (a lower level with a set of solutions) or too ill-conditioned for the solver."""
        from ...errors import Diagnostic

        for low in self.model.program.lowers.values():
            text = Diagnostic(f"the lower Hessian of lower {low.name} is singular or ill-conditioned: the implicit "
                              f"hypergradient's linear solve left a relative residual of {residual:.3g}, so "
                              "the hypergradient is not to be trusted", low.span,
                              "a lower level with a whole set of solutions takes bilevel = value_gap (or penalty), "
                              "which pick the solution best for the upper objective").render("warning")
            _warn(text, low.span)

    def value_fn(self, data, key, est):
        """The upper loss at the current lower solution, as a function of the upper parameters."""
        inner = {k: v for k, v in est.items() if k not in OWN}
        y = self.reported(est)
        draw = key if self.model.stochastic else None
        return lambda p: self.model.loss_and_values({**p, **y}, data, draw, inner)[0]

    def check_state(self, est: dict) -> None:
        """``check`` of the run's final state (``GradientSolver.finish``)."""
        self.check(est[STATE])

    def reported(self, est: dict) -> dict:
        """The lower solution (``NAME.p``), with the nested blocks' (``mid.inner.c``)."""
        self.check(est[STATE])
        return {**self.method.reported(est[STATE]), **est.get(NESTED, {})}


def stop_tree(tree):
    return jax.tree.map(jax.lax.stop_gradient, tree)


def cosines(model: Model, u: dict, data: dict, key=None):
    """The m x m cosine similarities of the upper objectives' hypergradients (the rows of the
    Jacobian through the lower solution, not the partial gradients; 0 for a zero row) at ``u``, the
    upper parameters with the reported lower solutions (the start of one more lower solve).  The
    rows are the method's, or implicit's where the method has none (an aggregator of mean or sum)."""
    from ...lib.bilevel.implicit import implicit

    direction = HypergradientDirection.of(model)
    method = direction.method if hasattr(direction.method, "rows") else implicit()
    direction = HypergradientDirection(model, method, direction.inner, direction.nested, direction.aggregator)
    x = {k: v for k, v in u.items() if k in model.program.params}
    y = {k: v for k, v in u.items() if parent(k) in direction.top}
    z = {k: v for k, v in u.items() if k not in x and k not in y}
    draw = (key if key is not None else jax.random.PRNGKey(0)) if model.stochastic else None
    problem = Problem(direction, data, draw, model.initial_state(x, data), x, z)
    _, J, _ = method.rows(problem, x, method.init(problem, y))
    J = jax.vmap(lambda r: ravel_pytree(r)[0])(J)
    norms = jnp.linalg.norm(J, axis=1)
    outer = jnp.outer(norms, norms)
    return jnp.where(outer > 0, J @ J.T / jnp.maximum(outer, 1e-30), 0.0)


def conflict_report(model: Model, u: dict, data: dict, seed: int) -> dict[str, float]:
    """``{"a|b": cosine}`` for every pair of upper objectives at the run's end (``cosines``): the
    Result's conflict report for a bilevel program."""
    C = np.asarray(jax.jit(lambda u, d: cosines(model, u, d, jax.random.PRNGKey(seed)))(u, data))
    names = [o.name for o in model.program.objectives]
    return {f"{a}|{b}": float(C[i, j]) for i, a in enumerate(names) for j, b in enumerate(names) if i < j}
