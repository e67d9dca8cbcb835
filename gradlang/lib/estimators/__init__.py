"""Gradient estimators for sample sites: one entry a file, registered under its file stem.

An entry is a function of its settings returning an ``Estimator``: ``check`` says whether it fits a
distribution, ``draw`` returns the sampled value and, for score-function estimators, the term
``log q(value)`` whose gradient carries the score, and ``baseline`` maps the particles' objective
values ``f`` (shape ``[K]``) to the baselines subtracted from them.  Estimators that evaluate the
rest of the program at other values of the site (``enum``, ``mvd``) override ``apply``, which gets
that rest as a function ``cont(value) -> f``.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp

from ...registry import Registry

ESTIMATORS = Registry("estimator", "gradlang.lib.estimators")


@dataclass(frozen=True)
class Estimator:
    name: str

    def check(self, dist) -> str | None:
        """None when the estimator applies to ``dist``, else why not."""
        return None

    def draw(self, dist, key):
        raise NotImplementedError

    def baseline(self, f: jnp.ndarray, site: str = "") -> jnp.ndarray:
        return jnp.zeros_like(f)

    def apply(self, dist, key, cont, scores: dict, name: str):
        """Draw the site and run the rest of the program: ``f`` with this site's gradient."""
        value, score = self.draw(dist, key)
        if score is not None:
            scores[name] = (score, self)
        return cont(value)


def base_of(dist):
    """The distribution under ``expand``/``to_event`` wrappers (sites are wrapped that way)."""
    while hasattr(dist, "base_dist"):
        dist = dist.base_dist
    return dist
