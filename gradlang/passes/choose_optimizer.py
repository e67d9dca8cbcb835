"""The optimizer expression becomes a checked spec.

``solve { optimizer = adamw(lr = cosine(0.01), weight_decay = 1e-4) }`` is looked up in the
optimizer and schedule registries (unknown words, wrong argument names and wrong kinds of
arguments are located errors here, so ``gradlang check`` reports them), and a schedule whose
length is not written is bound to the solve's step count:

    optimizer adamw(lr=cosine(0.01, steps=<solve steps: 2000>), weight_decay=0.0001)

The bound length is a ``ConfigValue`` of kind ``steps``: a run with another step count (``--steps``,
``fit(steps=...)``) rebinds it.  No optimizer written is Adam with a learning rate of 0.01.  A prox
method (split_prox's plan) takes its own steps and gets no optimizer: one written under it is a
located error.

Under Jacobian descent an elementwise optimizer runs on the parameters raveled into one vector
(``runs_raveled``), which the IR shows:

    optimizer adam(lr=0.05) on the raveled parameters
"""

from __future__ import annotations

import inspect
from dataclasses import replace

from ..backend.optimizer import ELEMENTWISE, build_optimizer, uses_total_steps
from ..check.config import DEFAULT_OPTIMIZER, validate_optimizer
from ..errors import ConfigError
from ..ir import nodes as ir
from ..ir.plan import OptimizerSpec
from ..lib.schedules import SCHEDULES
from .objectives_to_aggregate import LINEAR


def bind_steps(cfg: ir.ConfigValue, steps: int) -> ir.ConfigValue:
    """``cfg`` with every schedule that does not set its length given ``steps = <solve steps>``."""
    if cfg.kind not in ("call", "word", "array"):
        return cfg
    args = tuple(bind_steps(a, steps) for a in cfg.args)
    kwargs = tuple((k, bind_steps(v, steps)) for k, v in cfg.kwargs)
    if cfg.kind in ("call", "word") and cfg.value in SCHEDULES:
        signature = inspect.signature(SCHEDULES.get(cfg.value).value)
        params = list(signature.parameters)
        if "steps" in params and not any(k == "steps" for k, _ in kwargs) and len(args) <= params.index("steps"):
            kwargs = kwargs + (("steps", ir.ConfigValue("steps", steps, span=cfg.span)),)
            cfg = replace(cfg, kind="call", name_spans=tuple(cfg.name_spans) + (cfg.span,))
    return replace(cfg, args=args, kwargs=kwargs)


def runs_raveled(program: ir.Program, written: ir.ConfigValue) -> bool:
    """Whether the optimizer runs on the parameters raveled into one vector, its state too.  Under
    Jacobian descent (a vector objective whose aggregator is not linear) the direction is one flat
    vector; an elementwise optimizer (``ELEMENTWISE``) written alone updates it in one fused
    operation instead of one per parameter array, with the same numbers (Adam on the six arrays of
    a two-layer MLP cost its Jacobian-descent step 4%, m = 2, n = 2e4, XLA:CPU).  Not under a
    constraint plan (projections and multiplier terms act on the parameters' tree), a lower level
    (its hypergradient direction) or the VI defaults (whose iterate average keeps the tree)."""
    plan = program.aggregate
    return (plan is not None and plan.aggregator.value not in LINEAR
            and written.kind in ("word", "call") and written.value in ELEMENTWISE
            and program.constrained is None and not program.lowers and program.vi_defaults is None)


# how each prox method takes its steps, for the error that refuses an optimizer under it
OWN_STEPS = {"proximal": "a backtracking line search", "fista": "a backtracking line search",
             "admm": "its x-update's linear solve or inner gradient steps, and its prox steps",
             "pdhg": "step sizes from a norm estimate of K"}


def choose_optimizer(program: ir.Program) -> ir.Program:
    if program.split is not None:  # a prox method (split_prox's plan) takes its own steps
        _no_optimizer(program)
        return program
    solve = program.solve
    written = getattr(solve, "optimizer", None) or DEFAULT_OPTIMIZER
    steps = getattr(solve, "steps", 1000)
    # building it checks every word and argument against the registries; one traced update
    # checks the kinds of the arguments (a word where a learning rate goes, say): a written one's
    # (the default is known to trace; tracing it cost every program 15-30 ms of its compile)
    optimizer = build_optimizer(written, steps)
    if written is not DEFAULT_OPTIMIZER:
        validate_optimizer(optimizer, written, steps)
    spec = OptimizerSpec(bind_steps(written, steps), uses_total_steps(written), runs_raveled(program, written),
                         span=written.span)
    return program.replace(optimizer=spec)


def _no_optimizer(program: ir.Program) -> None:
    """A written ``optimizer`` under a prox method is a located error: the method takes its own
    steps, and an optimizer silently unused would mislead."""
    written, method = getattr(program.solve, "optimizer", None), program.solve.method
    if written is not None and written is not DEFAULT_OPTIMIZER:
        at = getattr(program.solve, "spans", {}).get("optimizer") or written.span
        raise ConfigError(f"method = {method} takes its own steps ({OWN_STEPS.get(method, 'its own rule')}), "
                          "not an optimizer's", at, f"leave optimizer out, or use method = gradient to follow "
                          f"{written.value}")
