"""Solve-block optimizer expressions -> Optax transformations, through the registries.

``adamw(lr = cosine(0.01, 2000), weight_decay = 1e-4)`` becomes
``OPTIMIZERS["adamw"](lr=SCHEDULES["cosine"](0.01, 2000), weight_decay=1e-4)``.  A schedule whose
``steps`` is not written runs over the whole solve (``steps`` of the solve block).
"""

from __future__ import annotations

import inspect

import numpy as np
import optax

from ..errors import ConfigError, choice_help, did_you_mean
from .evaluate import refused_by_library
from ..ir import nodes as ir
from ..ir.plan import OptimizerSpec
from ..lib.optimizers import OPTIMIZERS, takes_optimizers
from ..lib.schedules import SCHEDULES

# optimizers whose update of each entry reads that entry's gradient and state alone (and the step
# count): on the raveled parameters they give the numbers they give leaf by leaf.  Not lamb, lars,
# muon, adaptive_grad_clip (per-array norms or matrices), nor the wrappers that keep parameters in
# their state (lookahead, schedule_free: ``final_params`` reads them as the parameters' tree).
ELEMENTWISE = frozenset({"adam", "adamw", "sgd", "momentum", "nesterov", "rmsprop", "adagrad",
                         "adabelief", "nadam", "radam", "lion", "adan"})


def _arg(v: ir.ConfigValue, total_steps: int):
    if v.kind == "steps":  # a schedule's length bound to the solve's step count (choose_optimizer)
        return total_steps
    if v.kind == "number":
        value = v.value
        return value.item() if isinstance(value, np.ndarray) and value.ndim == 0 else value
    if v.kind == "array":
        return [_arg(a, total_steps) for a in v.args]
    if v.kind == "string" or (v.kind == "word" and v.value not in OPTIMIZERS and v.value not in SCHEDULES):
        shown = f'"{v.value}"' if v.kind == "string" else v.value
        raise ConfigError(f"{shown} is not a number, an optimizer or a schedule", v.span,
                          did_you_mean(str(v.value), OPTIMIZERS.names() + SCHEDULES.names())
                          or "optimizer arguments are numbers (lr = 0.01) or schedules (lr = cosine(0.01))")
    return _call(v, total_steps, top=False)


def _call(v: ir.ConfigValue, total_steps: int, top: bool = True):
    if v.kind not in ("word", "call"):
        raise ConfigError("expected an optimizer, like adam(lr = 0.01)", v.span,
                          choice_help("", OPTIMIZERS.names()))
    if v.value not in SCHEDULES and v.value not in OPTIMIZERS:
        if top:
            raise ConfigError(f"unknown optimizer '{v.value}'", v.span, choice_help(v.value, OPTIMIZERS.names()))
        nearest = did_you_mean(v.value, OPTIMIZERS.names() + SCHEDULES.names())
        is_schedule = nearest is not None and nearest.split("'")[1] in SCHEDULES
        kind, known = ("schedule", SCHEDULES.names()) if is_schedule else \
            ("optimizer or schedule", OPTIMIZERS.names() + SCHEDULES.names())
        raise ConfigError(f"unknown {kind} '{v.value}'", v.span, choice_help(v.value, known))
    registry = SCHEDULES if v.value in SCHEDULES else OPTIMIZERS
    fn = registry.get(v.value, v.span).value
    args = [_arg(a, total_steps) for a in v.args]
    kwargs = {k: _arg(a, total_steps) for k, a in v.kwargs}
    signature = inspect.signature(fn)
    names = [p for p in signature.parameters if p not in ("opts",)]
    for (k, _), span in zip(v.kwargs, v.name_spans or [v.span] * len(v.kwargs)):
        if k not in signature.parameters:
            about = " (lr is the learning rate)" if "lr" in names and k in ("learning_rate", "step_size", "eta") else ""
            hint = did_you_mean(k, names)
            raise ConfigError(f"{v.value}() has no argument '{k}'", span,
                              (f"{hint} " if hint else "") + f"its arguments: {', '.join(names)}{about}")
    if registry is SCHEDULES and "steps" in signature.parameters:
        try:
            if "steps" not in signature.bind_partial(*args, **kwargs).arguments:
                kwargs["steps"] = total_steps
        except TypeError:
            pass
    try:
        signature.bind(*args, **kwargs)
    except TypeError as err:
        raise ConfigError(f"wrong arguments to {v.value}(): {err}", v.span,
                          f"its arguments: {', '.join(names)}") from None
    if takes_optimizers(fn):
        inner = args if "opts" in signature.parameters else args[:1]
        for a, node in zip(inner, v.args):
            if not isinstance(a, optax.GradientTransformation):
                raise ConfigError(f"{v.value}() takes optimizers, not {node.kind}s", node.span,
                                  f"e.g. {v.value}(clip_by_global_norm(1.0), adam(lr = 0.01))" if v.value == "chain"
                                  else f"e.g. {v.value}(adam(lr = 0.01))")
        if not inner:
            raise ConfigError(f"{v.value}() needs at least one optimizer", v.span, None)
    try:
        return fn(*args, **kwargs)
    except Exception as err:  # noqa: BLE001 - sorted by refused_by_library; our own bugs propagate
        if not refused_by_library(err):
            raise
        raise ConfigError(f"cannot build {v.value}(...)", v.span, str(err).splitlines()[0] if str(err) else None) from None


GRADIENT_ONLY = {"clip", "clip_by_global_norm", "adaptive_grad_clip", "add_noise"}


def _takes_a_step(cfg: ir.ConfigValue) -> bool:
    """Whether an optimizer expression contains something that turns gradients into steps (a bare
    clip would move the parameters along the gradient, not against it)."""
    if cfg.kind not in ("word", "call"):
        return False
    inner = list(cfg.args) + [v for _, v in cfg.kwargs]
    if cfg.value in GRADIENT_ONLY or cfg.value in ("chain", "lookahead"):
        return any(_takes_a_step(a) for a in inner)
    return True


def build_optimizer(cfg: "ir.ConfigValue | OptimizerSpec", total_steps: int):
    """The Optax transformation a solve block's ``optimizer`` field (or the plan's checked spec)
    names, its schedules running over ``total_steps`` where their length is not written."""
    if isinstance(cfg, OptimizerSpec):
        cfg = cfg.config
    if cfg.kind in ("word", "call") and cfg.value in SCHEDULES:
        raise ConfigError(f"'{cfg.value}' is a schedule, not an optimizer", cfg.span,
                          f"use it as a learning rate: adam(lr = {cfg.value}(...))")
    opt = _call(cfg, total_steps)
    if not _takes_a_step(cfg):
        raise ConfigError(f"{cfg.value}(...) only transforms gradients: nothing here takes a step", cfg.span,
                          "chain it with an optimizer: chain(clip_by_global_norm(1.0), adam(lr = 0.01))")
    return opt


def uses_total_steps(cfg: "ir.ConfigValue | OptimizerSpec") -> bool:
    """Whether the optimizer built from ``cfg`` may depend on the solve's step count (it holds a
    schedule, whose length defaults to it)."""
    if isinstance(cfg, OptimizerSpec):
        return cfg.uses_steps
    if cfg.kind in ("word", "call") and cfg.value in SCHEDULES:
        return True
    return any(uses_total_steps(a) for a in list(cfg.args) + [v for _, v in cfg.kwargs])
