"""The ``solve`` block: known fields, their defaults, and validation of every choice word.

Unknown fields and unknown choices are errors listing the known ones (with the nearest match).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError, GradlangError, choice_help, collect
from ..ir import nodes as ir
from ..source import Span
from ..syntax import ast
from .config_value import config_value
from .names import name_span, unsupported

CHOICES = {
    "method": ["gradient", "proximal", "fista", "admm", "pdhg", "gda", "extragradient", "optimistic", "mirror_prox"],
    "constraints": ["auto", "projection", "penalty", "augmented_lagrangian", "lagrangian"],
    "bilevel": ["unroll", "implicit", "penalty", "lv_hba", "bo_rep"],
}
SUPPORTED = {"method": {"gradient", "proximal", "fista", "admm", "pdhg"}}
FIELDS = ["optimizer", "steps", "batch", "seed", "method", "constraints", "aggregator", "bilevel",
          "log_every", "tol"]
DEFAULT_OPTIMIZER = ir.ConfigValue("call", "adam", (), (("lr", ir.ConfigValue("number", 0.01)),))


@dataclass
class SolveSettings:
    """Every solve field with its value (defaults filled in) and the span it was written at."""

    optimizer: ir.ConfigValue = DEFAULT_OPTIMIZER
    steps: int = 1000
    batch: int | None = None
    seed: int = 0
    method: str = "gradient"
    method_config: ir.ConfigValue | None = None  # the method as written, with its arguments (admm(rho = 2))
    constraints: ir.ConfigValue = field(default_factory=lambda: ir.ConfigValue("word", "auto"))
    aggregator: str | None = None
    aggregator_config: ir.ConfigValue | None = None  # the aggregator as written, with its arguments
    bilevel: ir.ConfigValue = field(default_factory=lambda: ir.ConfigValue("call", "implicit"))
    log_every: int = 100
    tol: float | None = None  # stop when the loss settles (deterministic objectives only)
    spans: dict[str, Span] = field(default_factory=dict)


def _integer(v: ir.ConfigValue, name: str, minimum: int) -> int:
    ok = v.kind == "number" and np.ndim(v.value) == 0 and np.isfinite(float(v.value))
    if not ok or float(v.value) != int(v.value) or not minimum <= int(v.value) < 2**31:
        example = {"steps": 1000, "batch": 64, "seed": 0, "log_every": 100}[name]
        raise ConfigError(f"{name} must be an integer >= {minimum}", v.span, f"e.g. {name} = {example}")
    return int(v.value)


def _tol(v: ir.ConfigValue) -> float:
    ok = v.kind == "number" and np.ndim(v.value) == 0 and np.isfinite(float(v.value)) and float(v.value) > 0
    if not ok:
        raise ConfigError("tol must be a positive number", v.span, "e.g. tol = 1e-6")
    return float(v.value)


def _tol_applies(settings: SolveSettings, program: ir.Program) -> None:
    """``tol`` stops on a settled loss: a Monte-Carlo or minibatched loss never settles."""
    from ..backend.build import is_stochastic

    if settings.tol is None:
        return
    why = ("a Monte-Carlo estimate (expect, elbo, ...)" if is_stochastic(program)
           else "a minibatch estimate (batch is set)" if settings.batch else None)
    if why:
        raise ConfigError(f"tol needs a deterministic objective; this one is {why}", settings.spans["tol"],
                          "its noise would stop the run at random: leave tol out and set steps")


def _choice(v: ir.ConfigValue, name: str) -> str:
    if v.kind not in ("word", "call"):
        raise ConfigError(f"{name} must be one of the known words", v.span, choice_help("", CHOICES[name]))
    if v.value not in CHOICES[name]:
        raise ConfigError(f"unknown {name} '{v.value}'", v.span, choice_help(v.value, CHOICES[name]))
    return v.value


def check_solve(blocks: list[ast.Solve], program: ir.Program) -> SolveSettings:
    settings = SolveSettings()
    errors: list[GradlangError] = []
    if len(blocks) > 1:
        raise ConfigError("a program has one solve block", blocks[1].span, f"the first is at {blocks[0].span}")
    seen: dict[str, Span] = {}
    for f in (blocks[0].fields if blocks else ()):
        try:
            if f.name not in FIELDS:
                raise ConfigError(f"unknown solve field '{f.name}'", name_span(f.span, f.name),
                                  choice_help(f.name, FIELDS))
            if f.name in seen:
                raise ConfigError(f"solve field '{f.name}' is set twice", f.span, f"first set at {seen[f.name]}")
            seen[f.name] = f.span
            settings.spans[f.name] = f.value.span
            v = config_value(f.value, program)
            if f.name == "optimizer":
                settings.optimizer = v
            elif f.name in ("steps", "seed", "log_every", "batch"):
                setattr(settings, f.name, _integer(v, f.name, 0 if f.name == "seed" else 1))
            elif f.name == "method":
                settings.method, settings.method_config = _choice(v, "method"), v
                if settings.method not in SUPPORTED["method"]:
                    raise unsupported(f"method '{settings.method}' is", v.span, "use method = gradient, proximal, fista, admm or pdhg for now")
            elif f.name == "aggregator":  # the registry checks it (objectives_to_aggregate)
                if v.kind not in ("word", "call"):
                    raise ConfigError("aggregator must be a word or a call, like upgrad or cagrad(c = 0.4)",
                                      v.span, "`gradlang list aggregators` lists them")
                settings.aggregator, settings.aggregator_config = v.value, v
            elif f.name == "tol":
                settings.tol = _tol(v)
            elif f.name == "bilevel":  # the registry checks it (bilevel_to_hypergrad)
                if v.kind not in ("word", "call"):
                    raise ConfigError("bilevel must be a word or a call, like implicit(solver = cg)", v.span,
                                      "`gradlang list bilevel` lists them")
                settings.bilevel = v
            else:
                _choice(v, f.name)
                setattr(settings, f.name, v)
        except GradlangError as err:
            errors.append(err)
    collect(errors)
    _tol_applies(settings, program)
    # the aggregator and the optimizer are checked by their passes (objectives_to_aggregate,
    # choose_optimizer), which write the decisions into the IR
    return settings


def _structure(cfg: ir.ConfigValue) -> tuple:
    """A config value without its spans: equal for optimizers written alike."""
    return (cfg.kind, repr(cfg.value), tuple(_structure(a) for a in cfg.args),
            tuple((k, _structure(v)) for k, v in cfg.kwargs))


_VALID_OPTIMIZERS: set = set()  # (structure, steps) of optimizers whose update traced once


def validate_optimizer(opt, cfg: ir.ConfigValue, steps: int | None = None) -> None:
    """Trace one update on a small parameter tree, so that wrong kinds of arguments (a word where a
    learning rate goes, say) are reported here, at the optimizer's span, not in the middle of a run.
    An optimizer written alike before (same settings and steps) is known to trace."""
    import jax
    import jax.numpy as jnp

    key = (_structure(cfg), steps)
    if key in _VALID_OPTIMIZERS:
        return

    # shapes, not arrays: eval_shape needs no values, and jnp.zeros is two compiles in a fresh process
    params = {"vector": jax.ShapeDtypeStruct((3,), jnp.float32), "matrix": jax.ShapeDtypeStruct((2, 2), jnp.float32)}

    def one_update(p):
        f = lambda q: sum(jnp.sum(x**2) for x in jax.tree.leaves(q))  # noqa: E731
        value, grads = jax.value_and_grad(f)(p)
        return opt.update(grads, opt.init(p), p, value=value, grad=grads, value_fn=f)

    from ..backend.evaluate import refused_by_library

    try:
        jax.eval_shape(one_update, params)
    except Exception as err:  # noqa: BLE001 - sorted by refused_by_library; our own bugs propagate
        if not refused_by_library(err):
            raise
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError("this optimizer cannot run with these arguments", cfg.span, detail) from None
    _VALID_OPTIMIZERS.add(key)
