"""Settings as data: the values of solve fields, estimator words and family words."""

from __future__ import annotations

from ..errors import ConfigError
from ..ir import nodes as ir
from ..syntax import ast
from .spans import name_span


def config_value(e, program) -> ir.ConfigValue:
    """A setting's value as data: numbers, strings, words, calls of words, arrays; consts and dims
    (``program.consts``, ``program.dims``) resolved to their values."""
    if isinstance(e, ast.Number):
        return ir.ConfigValue("number", e.value, span=e.span)
    if isinstance(e, ast.UnaryOp) and e.op == "-" and isinstance(e.operand, ast.Number):
        return ir.ConfigValue("number", -e.operand.value, span=e.span)
    if isinstance(e, ast.String):
        return ir.ConfigValue("string", e.value, span=e.span)
    if isinstance(e, ast.Name):
        if e.id in program.consts:
            return ir.ConfigValue("number", program.consts[e.id], span=e.span)
        if e.id in program.dims:
            return ir.ConfigValue("number", program.dims[e.id], span=e.span)
        return ir.ConfigValue("word", e.id, span=e.span)
    if isinstance(e, ast.Call) and isinstance(e.func, ast.Name):
        return ir.ConfigValue("call", e.func.id, tuple(config_value(a, program) for a in e.args),
                              tuple((k.name, config_value(k.value, program)) for k in e.kwargs),
                              tuple(name_span(k.span, k.name) for k in e.kwargs), span=e.span)
    if isinstance(e, ast.Array):
        return ir.ConfigValue("array", None, tuple(config_value(a, program) for a in e.items), span=e.span)
    raise ConfigError("a setting is a number, a word, or a call like adam(lr = 0.01)",
                      getattr(e, "span", None), None)


def config_args(cfg: ir.ConfigValue) -> tuple[list, dict]:
    """Positional and keyword settings of a family or estimator call, as Python values."""
    def value(v):
        if v.kind == "number":
            return v.value
        if v.kind in ("word", "string"):
            return v.value
        if v.kind == "call":  # ema(0.9) and the like
            return (v.value, [value(a) for a in v.args])
        return [value(a) for a in v.args]

    return [value(a) for a in cfg.args], {k: value(a) for k, a in cfg.kwargs}
