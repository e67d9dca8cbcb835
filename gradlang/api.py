"""The Python front door: ``gradlang.compile(path_or_source) -> Program``; ``Program.fit() -> Result``.

    prog = gradlang.compile("examples/ridge.grad")
    result = prog.fit(steps=500, lam=0.1)        # consts are overridden by keyword
    result.params["w"], result.objective, result.history
    loss = prog.objective_fn                     # pure JAX: (params, data) -> scalar loss
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from .backend import data as data_mod
from .backend.build import Model, build
from .backend.loop import Loop
from .backend.optimizer import build_optimizer, uses_total_steps
from .backend.result import Result
from .backend.runtime import run
from .errors import GradlangError
from .gc_pause import paused
from .ir import nodes as ir
from .pipeline import compile_source, read_source


class Program:
    """A compiled gradlang program."""

    def __init__(self, source, externs: dict | None = None, overrides: dict | None = None):
        self.source = source
        self.externs = dict(externs or {})
        self.overrides = dict(overrides or {})
        with paused():  # parsing, checking and the passes allocate enough to set off full collections
            self.ir: ir.Program = compile_source(source, self.overrides)
        self._loops: dict = {}  # compiled optimisation loops of earlier fits, by loop_key

    # ---- data and model ------------------------------------------------------------------------
    def bind(self, data: dict | str | Path | None = None) -> tuple[Model, dict]:
        """The model with its dims bound to ``data`` (a dict of arrays or an .npz/.csv path)."""
        supplied = data_mod.read_file(data) if isinstance(data, (str, Path)) else data
        arrays, dims = data_mod.bind(self.ir, data_mod.gather(self.ir, supplied))
        return build(self.ir, dims, arrays, self.ir.solve.batch), arrays

    @property
    def objective_fn(self) -> Callable:
        """The loss as a pure JAX function ``(params, data=None, key=None) -> scalar``.

        ``params`` maps names to values in their domains (as in ``Result.params``); ``data`` maps
        names to arrays (default: the program's ``load`` defaults).  Maximised objectives are
        negated; several are combined by the aggregator.  A Monte-Carlo objective (expect, elbo,
        ...) draws with ``key``: its gradient is then one draw of the program's estimator.
        """
        built: dict = {}  # the model at the program's own data, built once

        def objective(params: dict, data: dict | None = None, key=None):
            if data is None and "default" in built:
                model, arrays = built["default"]
            else:
                arrays, dims = data_mod.bind(self.ir, data_mod.gather(self.ir, data))
                model = build(self.ir, dims, arrays if self.ir.model is not None else None)
                if data is None:
                    built["default"] = (model, arrays)
            unconstrained = {n: jax.tree.map(lambda x, t=model.transform(n): t.inv(jnp.asarray(x)), v)
                             for n, v in params.items()}
            return model.loss(unconstrained, {k: jnp.asarray(v) for k, v in arrays.items()},
                              key if key is not None else (jax.random.PRNGKey(0) if model.stochastic else None))

        return objective

    # ---- fitting -------------------------------------------------------------------------------
    def fit(self, data: dict | str | Path | None = None, steps: int | None = None, seed: int | None = None,
            progress: Callable | None = None, checkpoint: str | Path | None = None,
            resume: str | Path | None = None, **consts: Any) -> Result:
        """Solve the program.  Keyword arguments override consts; ``steps``/``seed`` override the
        solve block.  ``checkpoint=DIR`` writes the solver's state there between chunks;
        ``resume=DIR`` continues the run that wrote it (same program, data, seed and steps), ending
        bit for bit where the uninterrupted run would.  Raises ``GradlangError``; a non-finite run
        raises ``NonFiniteError`` whose ``.result`` holds the last finite state."""
        from .backend.checkpoint import Checkpoints, fingerprint
        from .backend.solvers import make_solver

        with paused():  # binding and building trace (gradlang.gc_pause); run pauses until its loop starts
            program = self if not consts else Program(self.source, self.externs, {**self.overrides, **consts})
            settings = program.ir.solve
            model, arrays = program.bind(data)
            steps = settings.steps if steps is None else int(steps)
            if steps < 0:
                raise GradlangError("steps must be >= 0", None, None)
            seed = settings.seed if seed is None else int(seed)
            key = loop_key(settings, model.dims, steps)
            if key not in program._loops:
                solver = make_solver(model, build_optimizer(settings.optimizer, steps), settings)
                program._loops[key] = Loop(model, solver, settings.log_every)
            loop = program._loops[key]
            stamp = (fingerprint(program.source.text, program.overrides, arrays, seed, steps)
                     if checkpoint is not None or resume is not None else None)
        return run(model, loop.solver, arrays, steps=steps, seed=seed, log_every=settings.log_every,
                   progress=progress, loop=loop,
                   checkpoint=Checkpoints(checkpoint, stamp) if checkpoint is not None else None,
                   resume=Checkpoints(resume, stamp) if resume is not None else None)

    def sample_posterior(self, result: Result, n: int = 1000, data=None, seed: int = 0) -> dict:
        """``n`` joint draws of the latents from the fitted guide: ``{latent: array [n, ...]}``."""
        from .backend.posterior import sample_guide

        if self.ir.guide is None:
            raise GradlangError("this program has no guide to draw from", None, "add guide { ... } or guide = mean_field")
        model, arrays = self.bind(data)
        unconstrained = {k: jax.tree.map(jnp.asarray, v) for k, v in result.unconstrained.items()}
        return sample_guide(model, unconstrained, {k: jnp.asarray(v) for k, v in arrays.items()}, n, seed)


def loop_key(settings, dims: dict, steps: int) -> tuple:
    """What a compiled solver loop depends on besides the program: the dims (shapes), and the step
    count when a schedule's length defaults to it.  The chunk length is not in it: one compiled
    chunk runs any number of steps."""
    return tuple(sorted(dims.items())), steps if uses_total_steps(settings.optimizer) else None


def compile(path_or_source: str | Path, externs: dict | None = None) -> Program:
    """Compile a .grad file (a path ending in .grad) or program text."""
    return Program(read_source(path_or_source), externs)
