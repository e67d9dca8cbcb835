"""Solvers: the plan of a program as an ``eqx.Module`` that the runtime steps.  One entry a file,
registered under its file stem in ``SOLVERS`` (the solve block's ``method`` names the entry).

A solver has, as in Optimistix, a few pure methods over a state pytree:

* ``init(u, data, key) -> state``: the state at the unconstrained initial parameters ``u``;
* ``step(state, data, t, key) -> (state, stats)``: step ``t`` (0-based) with that step's key
  (``None`` when ``keyed`` is false); ``stats`` holds ``"values"``, each objective's value as the
  user wrote it (a float32 vector [m], m the number of objectives);
* ``objective(stats) -> scalar``: the objectives' aggregate as written, at a log point;
* ``terminate(state) -> bool array``: its own convergence test (``solve { tol = ... }``), and
  ``may_terminate``: whether it can ever hold (else the runtime's loop body is the bare step);
* ``params(state) -> u``: the unconstrained parameters to report.

and an attribute ``keyed``: whether a step needs a key at all; optionally ``values_at_new_state``:
whether a step's ``"values"`` are the objectives at the state it returns (the prox family's), so
that the runtime takes the final objectives from the last step instead of evaluating them again;
optionally ``state_like(u, data) -> state``: a state with ``init``'s structure, shapes and dtypes
whose values are placeholders, cheap to trace, from which the runtime lowers its loop before the
init is traced (tests/test_proximal.py checks it against ``init``).  The runtime
(``backend/runtime.py``, ``backend/loop.py``) knows nothing else of the method it runs: not the
estimators' state, not the aggregation of several objectives, not the sign of a maximised one.  The state is a pytree of arrays only (no
keys, no Python objects), so it can be checkpointed leaf by leaf and restored bit for bit.
"""

from __future__ import annotations

from ...registry import Registry

SOLVERS = Registry("solver", "gradlang.backend.solvers", by_file=True)


def make_solver(model, opt, settings):
    """The solver of ``settings.method`` for ``model``, updating with the Optax transform ``opt``."""
    entry = SOLVERS.get(settings.method, settings.spans.get("method"))
    return entry.value(model, opt, batch=settings.batch, tol=getattr(settings, "tol", None))
