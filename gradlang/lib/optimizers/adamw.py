import optax

from . import OPTIMIZERS


@OPTIMIZERS.register("adamw", cite="Loshchilov & Hutter, Decoupled Weight Decay Regularization, ICLR 2019")
def adamw(lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, weight_decay=1e-4):
    """AdamW: Adam with decoupled weight decay.

    m, v, m_hat, v_hat as in adam
    p <- p - lr * (m_hat / (sqrt(v_hat) + eps) + weight_decay * p)
    """
    return optax.with_extra_args_support(
        optax.adamw(lr, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay)
    )
