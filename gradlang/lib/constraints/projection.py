"""Projection: the parameter is put back onto its feasible set after every update."""

from __future__ import annotations

from . import CONSTRAINT_METHODS


@CONSTRAINT_METHODS.register("projection", cite="Bertsekas, Nonlinear Programming, 3rd ed., Athena 2016, sec. "
                                                "2.3 (gradient projection); optax.projections")
def projection():
    """Projected gradient: x+ = proj_C(x - step), for C a simple set (simplex, box, balls, affine sets).

    Feasible at every step.  constraints = projection requires every constraint to describe a simple
    set; constraints = auto projects where it can and uses the augmented Lagrangian for the rest."""
    return None
