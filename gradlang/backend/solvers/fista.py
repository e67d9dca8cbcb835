"""FISTA: the accelerated proximal gradient method, with adaptive restart.

    x_k = prox_{t h}(y_k - t grad f(y_k)),  theta_{k+1} = (1 + sqrt(1 + 4 theta_k^2)) / 2,
    y_{k+1} = x_k + (theta_k - 1) / theta_{k+1} (x_k - x_{k-1})

(Beck & Teboulle, SIAM J. Imaging Sci. 2009), O(1/k^2) on convex problems; the momentum restarts
when it points against the progress (O'Donoghue & Candès, Found. Comput. Math. 2015), which
recovers linear convergence on strongly convex problems.  The step comes from the backtracking of
``_prox_step``; the state and ``tol`` are those of ``proximal``.
"""

from __future__ import annotations

from ..build import Model
from . import SOLVERS
from .proximal import ProximalSolver


@SOLVERS.register("fista", cite="Beck & Teboulle, A Fast Iterative Shrinkage-Thresholding Algorithm, SIAM J. "
                                "Imaging Sci. 2009; O'Donoghue & Candès, Adaptive restart for accelerated "
                                "gradient schemes, Found. Comput. Math. 2015")
def fista(model: Model, opt=None, batch: int | None = None, tol: float | None = None) -> ProximalSolver:
    """Accelerated proximal gradient with gradient-based adaptive restart."""
    return ProximalSolver(model, tol, True)
