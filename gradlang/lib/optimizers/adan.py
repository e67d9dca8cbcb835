import optax

from . import OPTIMIZERS


@OPTIMIZERS.register(
    "adan",
    cite="Xie, Zhou, Li, Lin & Yan, Adan: Adaptive Nesterov Momentum Algorithm for Faster Optimizing "
    "Deep Models, IEEE TPAMI 2024 (arXiv:2208.06677)",
)
def adan(lr=1e-3, b1=0.98, b2=0.92, b3=0.99, eps=1e-8, weight_decay=0.0):
    """Adan: adaptive Nesterov momentum using gradient differences.

    m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) (g - g_prev);  n <- b3 n + (1-b3) (g + b2 (g - g_prev))^2
    p <- p - lr * ((m_hat + b2 v_hat) / (sqrt(n_hat) + eps) + weight_decay * p)   (hats: bias-corrected)
    """
    return optax.with_extra_args_support(
        optax.adan(lr, b1=b1, b2=b2, b3=b3, eps=eps, weight_decay=weight_decay)
    )
