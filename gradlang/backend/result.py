"""The result of a run: parameters in their domains, objective values, reports, history."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Result:
    """What a run returns: parameters in their domains, objective(s), reports and the history.

    ``history`` holds, at every ``log_every``-th step and the last: ``step``, ``objective`` (the
    objectives' aggregate as written, like ``objective``), ``objectives`` (each by name) and
    ``reports`` (each by name); ``interrupted`` when Ctrl-C stopped the run."""

    params: dict[str, np.ndarray]
    _objective: float
    _objectives: dict[str, float]
    reports: dict[str, Any]
    history: dict[str, list]
    steps: int
    seed: int
    seconds: float
    constraints: dict[str, dict] = field(default_factory=dict)
    conflicts_fn: Any = field(default=None, repr=False)  # computes the conflict report on demand
    _conflicts: dict | None = field(default=None, repr=False)
    converged: bool = False           # the solver's own test (solve { tol = ... }) stopped the run
    converged_at: int | None = None   # the steps run when it did
    posterior_fn: Any = field(default=None, repr=False)  # computes the posterior summaries on demand
    _posterior: dict | None = field(default=None, repr=False)
    diagnostics_fn: Any = field(default=None, repr=False)  # the guide's Pareto k̂, on demand
    _diagnostics: dict | None = field(default=None, repr=False)
    psis_posterior_fn: Any = field(default=None, repr=False)  # PSIS-corrected moments, on demand
    _psis_posterior: dict | None = field(default=None, repr=False)

    estimate_fn: Any = field(default=None, repr=False)  # a Monte-Carlo objective's estimate, on demand
    _standard_errors: dict | None = field(default=None, repr=False)

    def _estimate(self) -> None:
        """A Monte-Carlo objective: replace the run's last values by an estimate at the final
        parameters over the full data (``ESTIMATE_DRAWS`` independent evaluations of the program's
        own estimator), with its standard error; computed once, when first asked for."""
        if self.estimate_fn is not None and self._standard_errors is None:
            total, total_se, values, ses = self.estimate_fn()
            self._objective, self._objectives = total, values
            self._standard_errors = {"objective": total_se, **{f"objective {k}": v for k, v in ses.items()}}

    @property
    def conflicts(self) -> dict[str, float]:
        """Several objectives: ``"a|b"`` -> the cosine of the two gradients at the final parameters
        (computed when first asked for: it compiles a Jacobian the run itself may not need)."""
        if self._conflicts is None:
            self._conflicts = self.conflicts_fn() if self.conflicts_fn else {}
        return self._conflicts

    @property
    def objective(self) -> float:
        """The objectives' aggregate as written; for a Monte-Carlo objective, the estimate at the
        final parameters (``objective_se`` is its standard error)."""
        self._estimate()
        return self._objective

    @property
    def objectives(self) -> dict[str, float]:
        self._estimate()
        return self._objectives

    @property
    def objective_se(self) -> float | None:
        """The standard error of a Monte-Carlo objective's estimate (None for an exact objective)."""
        self._estimate()
        return None if self._standard_errors is None else self._standard_errors["objective"]

    @property
    def posterior(self) -> dict[str, dict]:
        """Per latent: mean, sd, q5, q95 of 1000 draws from the fitted guide (empty without a guide)."""
        if self._posterior is None:
            self._posterior = self.posterior_fn() if self.posterior_fn else {}
        return self._posterior

    @property
    def diagnostics(self) -> dict:
        """After a VI fit: ``khat``, the Pareto k̂ of the importance weights p(y, z)/q(z) over 2000
        guide draws, and ``verdict``, in plain words (backend/psis.py; Yao et al., ICML 2018);
        computed on first use; empty without a guide."""
        if self._diagnostics is None:
            self._diagnostics = self.diagnostics_fn() if self.diagnostics_fn else {}
            from .psis import rejected_note

            note = rejected_note(self.rejected_draws, self.draws)
            if self._diagnostics and note:
                self._diagnostics["verdict"] += f"; but {note}"
        return self._diagnostics

    @property
    def rejected_draws(self) -> int | None:
        """A VI fit under the chosen defaults (``reject=nonfinite``): how many of its Monte-Carlo
        draws were rejected for a non-finite log joint or gradient (backend/finite_particles.py),
        of ``draws``; None where they were not counted."""
        counts = self.history.get("rejected_draws")
        return int(counts[-1]) if counts else None

    @property
    def draws(self) -> int | None:
        """The Monte-Carlo draws of the fit (steps x particles), where ``rejected_draws`` counts."""
        counts = self.history.get("draws")
        return int(counts[-1]) if counts else None

    @property
    def psis_posterior(self) -> dict[str, dict]:
        """Per latent: ``mean`` and ``sd`` corrected by Pareto-smoothed importance sampling of 4000
        guide draws (backend/psis_posterior.py; Vehtari et al., JMLR 2024): closer to the posterior
        than ``posterior``'s when the guide is off, trustworthy while ``diagnostics["khat"]`` < 0.7;
        computed on first use; empty without a guide."""
        if self._psis_posterior is None:
            self._psis_posterior = self.psis_posterior_fn() if self.psis_posterior_fn else {}
        return self._psis_posterior
    unconstrained: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def to_json(self) -> dict:
        """The ``--out R.json`` layout."""
        def plain(x):
            x = np.asarray(x)
            return x.item() if x.ndim == 0 else x.tolist()

        return {
            "objective": float(self.objective),
            **({"objective_se": float(self.objective_se)} if self.objective_se is not None else {}),
            "objectives": {k: float(v) for k, v in self.objectives.items()},
            "params": {k: plain(v) if isinstance(v, np.ndarray) else _tree(v, plain) for k, v in self.params.items()},
            "reports": {k: plain(v) for k, v in self.reports.items()},
            "constraints": self.constraints,
            **({"conflicts": self.conflicts} if self.conflicts else {}),
            "history": {"step": list(self.history["step"]), "objective": list(self.history["objective"]),
                        "objectives": {k: list(v) for k, v in self.history.get("objectives", {}).items()}},
            "steps": int(self.steps),
            "converged": bool(self.converged),
            "converged_at": None if self.converged_at is None else int(self.converged_at),
            "seed": int(self.seed),
            "seconds": float(self.seconds),
        } | ({"posterior": {name: {k: plain(v) for k, v in s.items()} for name, s in self.posterior.items()}}
             if self.posterior else {}) | ({"khat": float(self.diagnostics["khat"]),
                                           "verdict": self.diagnostics["verdict"]} if self.diagnostics else {}) | (
            {"rejected_draws": self.rejected_draws, "draws": self.draws} if self.rejected_draws is not None else {})


def _tree(value, leaf):
    """A tree of arrays (a flow's network weights) as nested lists."""
    if isinstance(value, (list, tuple)):
        return [_tree(v, leaf) for v in value]
    if isinstance(value, dict):
        return {k: _tree(v, leaf) for k, v in value.items()}
    return leaf(value)
