"""A Laplace start for a Gaussian guide, and the guide fitted in the Laplace frame.

Pathfinder (Zhang, Carpenter, Gelman & Vehtari, JMLR 23, 2022) starts variational inference from
a Gaussian found by L-BFGS on the log joint density in the unconstrained space.  We take the end
of that path: L-BFGS (``optax.lbfgs``, zoom line search) on ``-log p(y, u)`` to the mode ``m0``,
the exact Hessian ``H`` there (``jax.hessian``: the guides this applies to are full-rank or
mean-field Gaussians over a few hundred latents at most), and the Gaussian

    full_rank:   N(m0, H^-1),              L0 = chol(H^-1)
    mean_field:  N(m0, diag(1 / H_ii)),    L0 = diag(H_ii^-1/2)

(``1 / H_ii`` is the variance that minimises KL(q || p) over diagonal Gaussians when p is Gaussian
with precision H; ``diag(H^-1)`` would overstate it).

The guide is then fitted *in that frame*: the optimiser's parameters ``w`` describe a Gaussian
``x ~ N(a, B B^T)`` (mean-field: ``N(a, diag(b)^2)``), starting at ``a = 0, B = I``, and the guide is
its image under ``u = m0 + L0 x``:

    loc = m0 + L0 a,    scale_tril = L0 B      (mean-field: loc = m0 + s0 a, scale = s0 b).

The map is affine, so the family and its optimum are unchanged; what changes is the conditioning.
Adam moves every coordinate by about ``lr`` a step; in the frame that is ``lr`` posterior sds in
every direction, whatever the units of the data (a regression on a mother's IQ, near 100, has an
intercept whose sd is 100 times its slope's, and the two almost perfectly correlated: in the raw
parametrisation a lower-Cholesky entry must travel to about -100 at 0.01 a step).

``LaplaceFrame`` wraps a direction: ``start`` runs the Laplace fit and returns the frame's initial
parameters with the frame kept in the direction's state (arrays, so a checkpoint holds it);
``__call__`` evaluates the wrapped direction at the guide's parameters and pulls its gradient back
to the frame's (one ``vjp`` of the affine map); ``to_params`` maps the frame's parameters to the
guide's for the report.  When L-BFGS or the Hessian is not finite (no mode: a flat direction, a
funnel, a saddle: the Hessian not positive definite, or the Newton decrement at the end above one,
i.e. still a posterior sd or more from the mode), the frame is the identity at the guide's own
initial point.
"""

from __future__ import annotations

import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpyro
import optax
from numpyro.distributions.transforms import biject_to
from numpyro.infer.util import potential_energy

FRAME = "laplace_frame"  # the key of the frame (m0, L0) in the direction's running state
LBFGS_STEPS = 200        # at most; it stops once the gradient's norm is below LBFGS_GTOL
LBFGS_GTOL = 1e-3
NEWTON_STEPS = 3         # Newton steps after L-BFGS, each taken only where it lowers the potential
FAMILIES = ("full_rank", "mean_field")  # the whole-guide families that have a frame
# XLA options for a function that runs once a fit: its compilation, not its run, is what costs
ONCE = {"xla_backend_optimization_level": 0}


class LaplaceFrame(eqx.Module):
    """A direction (``solvers.gradient.Gradient`` or another) evaluated in the Laplace frame."""

    inner: Any
    model: Any = eqx.field(static=True)
    family: str = eqx.field(static=True)
    compiled: Any = eqx.field(static=True, default=None)  # jits of ``_start`` and ``to_params``

    @staticmethod
    def of(inner, model, family: str) -> LaplaceFrame:
        """The frame with its set-up and its map to the guide's parameters compiled once each:
        run op by op outside a trace (at the start and for the report), each of their small ops
        would be compiled on its own.  The set-up runs once a fit, so it is compiled without XLA's
        backend optimisations (``ONCE``): on kidiq and logearn_height_male that saves 0.2-0.6 s
        of a ~1-2 s compilation and costs 1-25 ms of running time.  The compiled ``to_params``
        runs for the report only (inside the fit's steps it is traced into the step), so it too
        is compiled that way."""
        frame = LaplaceFrame(inner, model, family)
        return LaplaceFrame(inner, model, family, (
            jax.jit(lambda u, data: frame._start(u, data), compiler_options=ONCE),
            jax.jit(lambda w, frame_arrays: frame._to_params(w, frame_arrays), compiler_options=ONCE)))

    # ---- the guide's latents as one flat vector ----------------------------------------------
    def _latent_shapes(self) -> dict:
        """Each latent's unconstrained shape, in the guide's order."""
        ppl = self.model.ppl
        return {n: tuple(biject_to(c).inverse_shape(s)) for n, (c, s) in ppl.latents.items()}

    def _unravel(self, flat) -> dict:
        if self.family == "full_rank":
            return self.model.ppl.autoguide._unpack_latent(flat)
        out, i = {}, 0
        for n, shape in self._latent_shapes().items():
            size = math.prod(shape)
            out[n] = flat[i:i + size].reshape(shape)
            i += size
        return out

    def _loc(self, u: dict):
        """The guide's location as one flat vector (its initial point for L-BFGS)."""
        if self.family == "full_rank":
            return u["auto_loc"]
        return jnp.concatenate([jnp.ravel(u[f"{n}_auto_loc"]) for n in self._latent_shapes()])

    # ---- the frame --------------------------------------------------------------------------
    def laplace(self, u: dict, data: dict):
        """``(m0, L0)``: the mode of the log joint over the latents (the program's own parameters
        held at ``u``) and the Laplace factor (a matrix for full_rank, a vector for mean_field)."""
        params = {k: v for k, v in self.model.constrain(u).items() if k not in self.model.family}

        def potential(flat):
            with numpyro.validation_enabled(False):
                return potential_energy(self.model.ppl.model_fn, (data, params), {}, self._unravel(flat))

        x0 = self._loc(u)
        solver = optax.lbfgs()  # zoom line search: backtracking stalled on a mixture (low_dim_gauss_mix)
        value_and_grad = optax.value_and_grad_from_state(potential)

        def step(carry):
            x, state, i = carry
            value, grad = value_and_grad(x, state=state)
            updates, state = solver.update(grad, state, x, value=value, grad=grad, value_fn=potential)
            return optax.apply_updates(x, updates), state, i + 1

        def more(carry):
            _, state, i = carry
            grad = optax.tree_utils.tree_get(state, "grad")
            return (i == 0) | ((i < LBFGS_STEPS) & (optax.tree_utils.tree_norm(grad) >= LBFGS_GTOL))

        mode, _, _ = jax.lax.while_loop(more, step, (x0, solver.init(x0), jnp.int32(0)))

        def curvature(x):
            """The potential, its gradient and the Hessian's unit-diagonal scaling ``d`` with the
            eigenpairs of the scaled matrix (float32: the raw Hessian of a regression on
            unstandardised data is too ill-conditioned to factor directly), all from one
            forward-over-reverse pass (the value and gradient ride along as its primal)."""
            def grad_with_aux(x):
                value, grad = jax.value_and_grad(potential)(x)
                return grad, (value, grad)

            h, (value, grad) = jax.jacfwd(grad_with_aux, has_aux=True)(x)
            # symmetrised: in float32 the forward-over-reverse Hessian is asymmetric by roundoff, and
            # eigh reads one triangle only (gp_pois_regr: a -1e-5 eigenvalue of a positive definite
            # matrix, and the start fell back to the identity frame)
            h = 0.5 * (h + h.T)
            d = jax.lax.rsqrt(jnp.maximum(jnp.diag(h), 1e-12))
            lam, v = jnp.linalg.eigh(d[:, None] * h * d[None, :])
            return value, grad, d, lam, v

        def newton_direction(state):
            _, g, d, lam, v = state
            return -d * ((v / jnp.maximum(lam, 1e-6)) @ (v.T @ (d * g)))

        def newton(_, carry):
            # L-BFGS stalls on long, narrow valleys (diamonds' polynomial predictors); Newton steps
            # finish the job near a mode, a step kept only where the Hessian it came from is
            # positive definite and the potential falls.  One curvature evaluation per step (the
            # candidate's: kept, it is the next step's), so the compiled start holds one copy of
            # the Hessian's program instead of one per use.
            x, state, candidate = carry
            new = curvature(candidate)
            better = jnp.isfinite(new[0]) & (new[0] < state[0]) & jnp.all(jnp.isfinite(candidate))
            x, state = jax.tree.map(lambda a, b: jnp.where(better, a, b), (candidate, new), (x, state))
            proposal = x + newton_direction(state)
            proposal = jnp.where(jnp.all(state[3] > 0), proposal, x)
            return x, state, proposal

        # the first pass evaluates the L-BFGS end point itself (its "previous" value is +inf)
        inf = jnp.asarray(jnp.inf, mode.dtype)
        nothing = (inf, jnp.zeros_like(mode), jnp.ones_like(mode), jnp.zeros_like(mode),
                   jnp.eye(mode.shape[0], dtype=mode.dtype))
        mode, (value, g, d, lam, v), _ = jax.lax.fori_loop(0, NEWTON_STEPS + 1, newton, (mode, nothing, mode))
        cov = (v / jnp.maximum(lam, 1e-6)) @ v.T  # the scaled covariance
        # a mode: a positive definite Hessian, and the gradient's Newton decrement (the distance
        # to the mode of the local quadratic, in posterior sds) below one
        decrement = jnp.sum((d * g) * (cov @ (d * g)))
        ok = jnp.all(jnp.isfinite(mode)) & jnp.all(lam > 1e-6) & (decrement < 1.0) & jnp.isfinite(value)
        if self.family == "mean_field":
            factor, fallback = d, jnp.ones_like(x0)
        else:
            factor = d[:, None] * jnp.linalg.cholesky(0.5 * (cov + cov.T))
            fallback = jnp.eye(x0.shape[0], dtype=x0.dtype)
        ok = ok & jnp.all(jnp.isfinite(factor))
        return jnp.where(ok, mode, x0), jnp.where(ok, factor, fallback)

    def start(self, u: dict, data: dict, est: dict):
        """The frame's initial parameters (``a = 0, B = I``) and ``est`` with the frame."""
        w, frame = self.compiled[0](u, data) if self.compiled is not None else self._start(u, data)
        return w, {**est, FRAME: frame}

    def _start(self, u: dict, data: dict):
        m0, factor = self.laplace(u, data)
        w = dict(u)
        if self.family == "full_rank":
            n = m0.shape[0]
            w["auto_loc"] = jnp.zeros_like(m0)
            w["auto_scale_tril"] = self.model.transform("auto_scale_tril").inv(jnp.eye(n, dtype=m0.dtype))
        else:
            for name, shape in self._latent_shapes().items():
                w[f"{name}_auto_loc"] = jnp.zeros(shape, m0.dtype)
                w[f"{name}_auto_scale"] = self.model.transform(f"{name}_auto_scale").inv(jnp.ones(shape, m0.dtype))
        return w, (m0, factor)

    def to_params(self, w: dict, est: dict) -> dict:
        """The guide's unconstrained parameters of the frame's parameters ``w``."""
        traced = any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(w))
        if self.compiled is not None and not traced:  # the report: compiled on its own, once
            return self.compiled[1](w, est[FRAME])
        return self._to_params(w, est[FRAME])  # inside the step: traced into it

    def _to_params(self, w: dict, frame) -> dict:
        m0, factor = frame
        u = dict(w)
        if self.family == "full_rank":
            t = self.model.transform("auto_scale_tril")
            u["auto_loc"] = m0 + factor @ w["auto_loc"]
            u["auto_scale_tril"] = t.inv(factor @ t(w["auto_scale_tril"]))
            return u
        loc0, scale0 = self._unravel(m0), self._unravel(factor)
        for name in self._latent_shapes():
            t = self.model.transform(f"{name}_auto_scale")
            u[f"{name}_auto_loc"] = loc0[name] + scale0[name] * w[f"{name}_auto_loc"]
            u[f"{name}_auto_scale"] = t.inv(scale0[name] * t(w[f"{name}_auto_scale"]))
        return u

    # ---- the direction ----------------------------------------------------------------------
    def __call__(self, w, data, key, est):
        rest = {k: v for k, v in est.items() if k != FRAME}
        u, pull = jax.vjp(lambda w: self.to_params(w, est), w)
        loss, values, grads, rest = self.inner(u, data, key, rest)
        (grads,) = pull(grads)
        return loss, values, grads, {**rest, FRAME: est[FRAME]}

    def value_fn(self, data, key, est):
        rest = {k: v for k, v in est.items() if k != FRAME}
        f = self.inner.value_fn(data, key, rest)
        return lambda w: f(self.to_params(w, est))

    @property
    def stochastic(self) -> bool:
        return getattr(self.inner, "stochastic", False)
