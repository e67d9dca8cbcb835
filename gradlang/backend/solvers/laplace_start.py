"""A Laplace start for a Gaussian guide, and the guide fitted in the Laplace frame.

Pathfinder (Zhang, Carpenter, Gelman & Vehtari, JMLR 23, 2022) starts variational inference from
a Gaussian found by L-BFGS on the log joint density in the unconstrained space.  We take the end
of that path, the mode ``m0`` of ``-log p(y, u)``, found by damped Newton steps with the exact
Hessian (the guides this applies to are full-rank or mean-field Gaussians over a few hundred
latents at most: a Hessian is a few hundred Hessian-vector products; Newton's step with the
Hessian's eigenvalues in absolute value, halved until the potential falls), the Hessian ``H``
there, and the Gaussian

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
``__call__`` evaluates the wrapped direction at the guide's parameters (the scale handed over as the
frame makes it, ``L0 B``, already in its domain: ``build.Constrained``) and pulls its gradient back
to the frame's (one ``vjp`` of the affine map); ``to_params`` maps the frame's parameters to the
guide's unconstrained ones for the report.  When the Newton iterate or the Hessian is not finite (no mode: a flat
direction, a funnel, a saddle: the Hessian not positive definite, or the Newton decrement at the
end above one, i.e. still a posterior sd or more from the mode), the frame is the identity at the
guide's own initial point.
"""

from __future__ import annotations

import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpyro
from numpyro.distributions.transforms import biject_to
from numpyro.infer.util import potential_energy

from ..build import Constrained
from ..compile_options import once
from ..traced import tracing

FRAME = "laplace_frame"  # the key of the frame (m0, L0) in the direction's running state
NEWTON_STEPS = 60        # damped Newton iterations at most (each one Hessian)
NEWTON_TOL = 1e-4        # stop once the Newton decrement (squared distance to the mode, in sds) is below
MAX_STEP = 1e3           # a Newton step at most this long in the local posterior sds (a guard against overflow)
MIN_STEP = 1 / 64        # stop once the step was halved below this fraction (float32's noise floor)
FAMILIES = ("full_rank", "mean_field")  # the whole-guide families that have a frame


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
        backend optimisations (``once``): on kidiq and logearn_height_male that saves 0.2-0.6 s
        of a ~1-2 s compilation and costs 1-25 ms of running time.  The compiled ``to_params``
        runs for the report only (inside the fit's steps it is traced into the step), so it too
        is compiled that way."""
        frame = LaplaceFrame(inner, model, family)
        return LaplaceFrame(inner, model, family, (
            jax.jit(lambda u, data: frame._start(u, data), compiler_options=once()),
            jax.jit(lambda w, frame_arrays: frame._to_params(w, frame_arrays), compiler_options=once())))

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
        """The guide's location as one flat vector (the Newton iterations' initial point)."""
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
            d = jax.lax.rsqrt(jnp.maximum(jnp.abs(jnp.diag(h)), 1e-12))
            lam, v = jnp.linalg.eigh(d[:, None] * h * d[None, :])
            return value, grad, d, lam, v

        def newton_direction(state):
            """Newton's step with the scaled Hessian's eigenvalues taken in absolute value (a
            descent direction where the Hessian is indefinite: Dauphin et al., NeurIPS 2014),
            at most ``MAX_STEP`` long in the metric of that Hessian (the local posterior sds: the
            square root of the Newton decrement)."""
            _, g, d, lam, v = state
            curv = jnp.maximum(jnp.abs(lam), 1e-6)
            z = -(v.T @ (d * g)) / curv  # the step in the eigenbasis of the scaled Hessian
            length = jnp.sqrt(jnp.sum(curv * z * z))
            return d * (v @ (z * jnp.minimum(1.0, MAX_STEP / jnp.maximum(length, 1e-30))))

        def newton(carry):
            # damped Newton: the candidate x + t p is kept where the potential falls (then p is the
            # new point's Newton step and t = 1), else t is halved.  One curvature evaluation per
            # iteration (the candidate's: kept, it is the next one's), so the compiled start holds
            # one copy of the Hessian's program and nothing else: L-BFGS with optax's zoom line
            # search before it cost more than half of the start's compilation (kidiq 1.45 -> 0.70 s,
            # the same mode on the ten posteriordb ports to 0.02 sd but gp_pois_regr's, where
            # float32 noise in the potential leaves any method 0.01 nats from the mode)
            x, state, p, t, i = carry
            candidate = x + t * p
            new = curvature(candidate)
            better = jnp.isfinite(new[0]) & (new[0] < state[0]) & jnp.all(jnp.isfinite(candidate))
            x, state = jax.tree.map(lambda a, b: jnp.where(better, a, b), (candidate, new), (x, state))
            p = jnp.where(better, newton_direction(state), p)
            return x, state, p, jnp.where(better, 1.0, 0.5 * t), i + 1

        def more(carry):
            _, state, _, t, i = carry
            # the Newton decrement of the current point (its squared distance to the local
            # quadratic's mode, in posterior sds) still above NEWTON_TOL, the step not shrunk away
            _, g, d, lam, v = state
            decrement = jnp.sum((v.T @ (d * g)) ** 2 / jnp.maximum(jnp.abs(lam), 1e-6))
            return (i < 2) | ((i < NEWTON_STEPS) & (t > MIN_STEP) & ~(decrement < NEWTON_TOL))

        # the first iteration evaluates x0 itself (its "previous" value is +inf)
        inf = jnp.asarray(jnp.inf, x0.dtype)
        nothing = (inf, jnp.zeros_like(x0), jnp.ones_like(x0), jnp.zeros_like(x0), jnp.eye(x0.shape[0], dtype=x0.dtype))
        one = jnp.asarray(1.0, x0.dtype)
        mode, (value, g, d, lam, v), _, _, _ = jax.lax.while_loop(
            more, newton, (x0, nothing, jnp.zeros_like(x0), one, jnp.int32(0)))
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
        # inside a trace (the runtime's eval_shape of the init, a caller's jit) traced inline: a jit
        # with compiler options may only be a top-level one
        w, frame = (self.compiled[0](u, data) if self.compiled is not None and not tracing(u, data)
                    else self._start(u, data))
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
        """``_to_guide`` with the scales taken back to the guide's unconstrained parameters (the
        family's transform's inverse): the report's parameters."""
        return {k: self.model.transform(k).inv(v.value) if isinstance(v, Constrained) else v
                for k, v in self._to_guide(w, frame).items()}

    def _to_guide(self, w: dict, frame) -> dict:
        """What a step hands the guide: its parameters at the frame's ``w``, the scale given as the
        frame makes it (``L0 B``, ``s0 b``), already in its domain (``build.Constrained``), not
        through the family's transform's inverse and back."""
        m0, factor = frame
        u = dict(w)
        if self.family == "full_rank":
            t = self.model.transform("auto_scale_tril")
            u["auto_loc"] = m0 + factor @ w["auto_loc"]
            u["auto_scale_tril"] = Constrained(factor @ t(w["auto_scale_tril"]))
            return u
        loc0, scale0 = self._unravel(m0), self._unravel(factor)
        for name in self._latent_shapes():
            t = self.model.transform(f"{name}_auto_scale")
            u[f"{name}_auto_loc"] = loc0[name] + scale0[name] * w[f"{name}_auto_loc"]
            u[f"{name}_auto_scale"] = Constrained(scale0[name] * t(w[f"{name}_auto_scale"]))
        return u

    # ---- the direction ----------------------------------------------------------------------
    def __call__(self, w, data, key, est):
        rest = {k: v for k, v in est.items() if k != FRAME}
        u, pull = jax.vjp(lambda w: self._to_guide(w, est[FRAME]), w)
        loss, values, grads, rest = self.inner(u, data, key, rest)
        (grads,) = pull(grads)
        return loss, values, grads, {**rest, FRAME: est[FRAME]}

    def value_fn(self, data, key, est):
        rest = {k: v for k, v in est.items() if k != FRAME}
        f = self.inner.value_fn(data, key, rest)
        return lambda w: f(self._to_guide(w, est[FRAME]))

    @property
    def stochastic(self) -> bool:
        return getattr(self.inner, "stochastic", False)
