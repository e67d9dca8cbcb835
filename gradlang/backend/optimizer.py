"""Solve-block optimizer expressions -> Optax transformations, through the registries.

``adamw(lr = cosine(0.01, 2000), weight_decay = 1e-4)`` becomes
``OPTIMIZERS["adamw"](lr=SCHEDULES["cosine"](0.01, 2000), weight_decay=1e-4)``.  A schedule whose
``steps`` is not written runs over the whole solve (``steps`` of the solve block).
"""

from __future__ import annotations

import inspect

import numpy as np

from ..errors import ConfigError, choice_help, did_you_mean
from ..ir import nodes as ir
from ..lib.optimizers import OPTIMIZERS
from ..lib.schedules import SCHEDULES


def _arg(v: ir.ConfigValue, total_steps: int):
    if v.kind == "number":
        value = v.value
        return value.item() if isinstance(value, np.ndarray) and value.ndim == 0 else value
    if v.kind == "string":
        return v.value
    if v.kind == "array":
        return [_arg(a, total_steps) for a in v.args]
    if v.kind == "word" and v.value not in OPTIMIZERS and v.value not in SCHEDULES:
        return v.value
    return _call(v, total_steps)


def _call(v: ir.ConfigValue, total_steps: int):
    if v.kind not in ("word", "call"):
        raise ConfigError("expected an optimizer, like adam(lr = 0.01)", v.span,
                          choice_help("", OPTIMIZERS.names()))
    registry = SCHEDULES if v.value in SCHEDULES else OPTIMIZERS
    entry = registry.get(v.value, v.span)
    fn = entry.value
    args = [_arg(a, total_steps) for a in v.args]
    kwargs = {k: _arg(a, total_steps) for k, a in v.kwargs}
    signature = inspect.signature(fn)
    if registry is SCHEDULES and "steps" in signature.parameters:
        try:
            if "steps" not in signature.bind_partial(*args, **kwargs).arguments:
                kwargs["steps"] = total_steps
        except TypeError:
            pass
    try:
        signature.bind(*args, **kwargs)
    except TypeError as err:
        names = [p for p in signature.parameters if p not in ("opts",)]
        bad = [k for k, _ in v.kwargs if k not in signature.parameters]
        if bad:
            raise ConfigError(f"{v.value}() has no argument '{bad[0]}'", v.span,
                              (did_you_mean(bad[0], names) or "") + f" its arguments: {', '.join(names)}") from None
        raise ConfigError(f"wrong arguments to {v.value}(): {err}", v.span,
                          f"its arguments: {', '.join(names)}") from None
    try:
        return fn(*args, **kwargs)
    except Exception as err:  # a wrong kind of argument (a word where a number goes, say)
        raise ConfigError(f"cannot build {v.value}(...): {err}", v.span, None) from None


def build_optimizer(cfg: ir.ConfigValue, total_steps: int):
    """The Optax transformation a solve block's ``optimizer`` field names."""
    if cfg.kind in ("word", "call") and cfg.value in SCHEDULES:
        raise ConfigError(f"'{cfg.value}' is a schedule, not an optimizer", cfg.span,
                          f"use it as a learning rate: adam(lr = {cfg.value}(...))")
    return _call(cfg, total_steps)
