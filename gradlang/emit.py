"""``gradlang compile F --emit ast|ir|ir:PASS|jaxpr``: print each boundary of the pipeline."""

from __future__ import annotations

import jax

from .check import check
from .check.shapes import abstract_inputs, infer, symbolic_dims
from .errors import ConfigError, DataError, choice_help
from .ir import printer
from .passes import pass_names
from .pipeline import compile_source, read_source
from .syntax.parser import parse

STAGES = ["ast", "ir", "jaxpr"] + ["ir:check"] + [f"ir:{p}" for p in pass_names()]


def emit(path: str, stage: str) -> str:
    source = read_source(path)
    if stage == "ast":
        return printer.tree(parse(source))
    if stage == "ir":
        return printer.program(compile_source(source), infer)
    if stage == "ir:check":
        return printer.program(check(parse(source), source), infer)
    if stage.startswith("ir:"):
        name = stage[3:]
        if name not in pass_names():
            raise ConfigError(f"unknown pass '{name}'", None, choice_help(name, ["check"] + pass_names()))
        return printer.program(compile_source(source, until=name), infer)
    if stage == "jaxpr":
        return _jaxpr(source)
    raise ConfigError(f"unknown stage '{stage}'", None, choice_help(stage, STAGES))


def _jaxpr(source) -> str:
    """The jaxpr of the loss and its gradient, at the shapes of the data's defaults if it has
    them, else at placeholder sizes for its symbolic dims.  A Monte-Carlo objective takes the
    step's PRNG key as a third argument (an abstract one here), as the optimisation loop calls it."""
    from .api import Program
    from .backend.build import build

    program = Program(source)
    try:
        model, arrays = program.bind(None)
        data = {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in arrays.items()}
        note = ""
    except DataError:
        sizes = {d: 7 + i for i, d in enumerate(symbolic_dims(program.ir))}
        model = build(program.ir, {**program.ir.dims, **sizes})
        data, _ = abstract_inputs(program.ir, sizes)
        note = "# no data: symbolic dims at placeholder sizes " + ", ".join(f"{k}={v}" for k, v in sizes.items()) + "\n"
    params = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), {}))
    if model.stochastic:  # a Monte-Carlo objective: the step's PRNG key is an argument of the loss
        key = jax.ShapeDtypeStruct(jax.random.PRNGKey(0).shape, jax.random.PRNGKey(0).dtype)
        note += "# a Monte-Carlo objective: arguments (params, data, key)\n"
        return note + str(jax.make_jaxpr(jax.value_and_grad(model.loss))(params, data, key))
    return note + str(jax.make_jaxpr(jax.value_and_grad(model.loss))(params, data))
