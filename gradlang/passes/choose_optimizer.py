"""The optimizer expression becomes a checked spec.

``solve { optimizer = adamw(lr = cosine(0.01), weight_decay = 1e-4) }`` is looked up in the
optimizer and schedule registries (unknown words, wrong argument names and wrong kinds of
arguments are located errors here, so ``gradlang check`` reports them), and a schedule whose
length is not written is bound to the solve's step count:

    optimizer adamw(lr=cosine(0.01, steps=<solve steps: 2000>), weight_decay=0.0001)

The bound length is a ``ConfigValue`` of kind ``steps``: a run with another step count (``--steps``,
``fit(steps=...)``) rebinds it.  No optimizer written is Adam with a learning rate of 0.01.
"""

from __future__ import annotations

import inspect
from dataclasses import replace

from ..backend.optimizer import build_optimizer, uses_total_steps
from ..check.config import DEFAULT_OPTIMIZER, validate_optimizer
from ..ir import nodes as ir
from ..lib.schedules import SCHEDULES


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


def choose_optimizer(program: ir.Program) -> ir.Program:
    solve = program.solve
    written = getattr(solve, "optimizer", None) or DEFAULT_OPTIMIZER
    steps = getattr(solve, "steps", 1000)
    # building it checks every word and argument against the registries; one traced update
    # checks the kinds of the arguments (a word where a learning rate goes, say)
    validate_optimizer(build_optimizer(written, steps), written, steps)
    spec = ir.OptimizerSpec(bind_steps(written, steps), uses_total_steps(written), span=written.span)
    return program.replace(optimizer=spec)
