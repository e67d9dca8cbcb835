import jax
import optax
import optax.contrib

from . import OPTIMIZERS


@OPTIMIZERS.register(
    "sophia",
    cite="Liu, Li, Hall, Liang & Ma, Sophia: A Scalable Stochastic Second-order Optimizer for "
    "Language Model Pre-training, ICLR 2024",
)
def sophia(lr=1e-3, b1=0.965, b2=0.99, eps=1e-8, weight_decay=1e-4, gamma=0.01, clip_threshold=1.0,
           update_interval=10, seed=0):
    """Sophia-H: momentum preconditioned by a clipped Hutchinson estimate of the Hessian diagonal.

    m <- b1 m + (1-b1) g;  every update_interval steps: h <- b2 h + (1-b2) u * (H u),  u ~ Rademacher
    p <- p - lr * (clip(m_hat / max(gamma h, eps), +-clip_threshold) + weight_decay * p)
    Uses the runtime's ``value_fn`` (passed to Optax as ``obj_fn``) for the Hessian-vector product.
    """
    tx = optax.contrib.sophia(
        lr, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay, gamma=gamma, clip_threshold=clip_threshold,
        update_interval=int(update_interval),
        hessian_diagonal_fn=optax.contrib.hutchinson_estimator_diag_hessian(jax.random.PRNGKey(int(seed))),
    )

    def update(updates, state, params=None, *, value_fn=None, **extra):
        return tx.update(updates, state, params, obj_fn=value_fn, **extra)

    return optax.GradientTransformationExtraArgs(tx.init, update)
