"""The distribution of every sample site, found by abstract evaluation (no array is materialised).

A pass that decides per site (``choose_estimators``) needs each site's distribution: its class,
support and shape.  The model, the guide and each expect block are evaluated under
``jax.eval_shape`` with symbolic dims at placeholder sizes; a latent stands for an array of its
site's shape.  Only static facts of the distributions found are used afterwards (``has_rsample``,
the support, batch and event shapes), never their traced values.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..backend.evaluate import Evaluator
from ..check.shapes import _sentinels, abstract_inputs
from ..check.shapes import concrete as concrete_shape
from ..errors import GradlangError
from ..ir import nodes as ir


class _NoMonteCarlo:
    """Stands for the Monte-Carlo context: what a site's distribution may depend on (a log density
    of a draw, a nested expect) is a real scalar here."""

    def log_density(self, node, local):
        return jnp.zeros(())

    def expect(self, ev, node, local):
        return jnp.zeros(())


class _Lenient(dict):
    """Locals where a name not bound here (a draw of the guide, an enclosing block's local) is a
    real scalar: enough to learn a distribution's class and support."""

    def __missing__(self, name):
        return jnp.zeros(())


def _latent_value(d, shape) -> jnp.ndarray:
    shape = tuple(shape) if shape is not None else tuple(d.batch_shape + d.event_shape)
    return jnp.zeros(shape, jnp.int32 if d.support.is_discrete else jnp.float32)


def site_distributions(program: ir.Program, blocks: dict[str, tuple]) -> dict[tuple[str, str], object]:
    """``(block, site) -> distribution`` for the sample sites of ``blocks`` (name -> statements), in
    each block's order, the site's declared shape applied.  A site whose distribution cannot be
    evaluated abstractly (it depends on a value known only when traced with the data) is
    evaluated again with its unknown names as scalars."""
    from ..backend.site_dists import shaped

    sizes = _sentinels(program)
    data, params = abstract_inputs(program, sizes)
    names = {v: k for k, v in sizes.items()}
    dims = {**program.dims, **sizes}
    found: dict[tuple[str, str], object] = {}

    def concrete(shape):
        return concrete_shape(shape, dims) if shape is not None else None

    def run(data, params):
        ev = Evaluator(program, data, params, program.consts, dims, dim_names=names, vi=_NoMonteCarlo())
        for block, stmts in blocks.items():
            local = _Lenient()
            for st in stmts:
                try:
                    if isinstance(st, ir.LetStmt):
                        local[st.name] = ev.eval(st.value, local)
                    elif isinstance(st, ir.DrawGuide):
                        local[st.name] = jnp.zeros(())
                    elif isinstance(st, ir.Sample) and st.dist is not None:
                        d = shaped(ev.eval(st.dist, local), concrete(st.shape))
                        found[(block, st.name)] = d
                        if not st.observed:
                            local[st.name] = _latent_value(d, concrete(st.shape))
                    elif isinstance(st, ir.Sample):
                        local[st.name] = jnp.zeros(concrete(st.shape) or ())
                except (GradlangError, KeyError, TypeError, ValueError):
                    # left for the checker (shapes) or the traced build to report precisely
                    if isinstance(st, (ir.LetStmt, ir.Sample)):
                        local[st.name] = jnp.zeros(())

    jax.eval_shape(run, data, params)
    return found
