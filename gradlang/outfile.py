"""``--out R.json | R.npz``: a run's result written to a file."""

from __future__ import annotations

import json
from pathlib import Path


def _npz_arrays(prefix: str, value) -> dict:
    """``value`` as npz entries: an array under ``prefix``; a tree of arrays (a flow guide's
    layers are lists of tuples of weights) one array per leaf, under ``prefix/i/...`` (list and
    tuple positions) or ``prefix/key/...`` (dict keys).  np.savez cannot store a ragged tree."""
    import numpy as np

    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _npz_arrays(f"{prefix}/{key}", item).items()}
    if isinstance(value, (list, tuple)):
        return {k: v for i, item in enumerate(value) for k, v in _npz_arrays(f"{prefix}/{i}", item).items()}
    return {prefix: np.asarray(value)}


def write_out(result, path: str) -> None:
    import numpy as np

    out = Path(path)
    if out.suffix == ".npz":
        arrays = {k: v for name, value in result.params.items() for k, v in _npz_arrays(f"params/{name}", value).items()}
        arrays |= {k: v for name, value in result.reports.items()
                   for k, v in _npz_arrays(f"reports/{name}", value).items()}
        arrays |= {"objective": np.asarray(result.objective), "history/step": np.asarray(result.history["step"]),
                   "history/objective": np.asarray(result.history["objective"]),
                   "steps": np.asarray(result.steps), "seed": np.asarray(result.seed),
                   "converged_at": np.asarray(-1 if result.converged_at is None else result.converged_at)}
        if result.rejected_draws is not None:  # VI defaults: the draws rejected as non-finite, and all draws
            arrays |= {"rejected_draws": np.asarray(result.rejected_draws), "draws": np.asarray(result.draws)}
        np.savez(out, **arrays)
    else:
        out.write_text(json.dumps(result.to_json(), indent=1))


