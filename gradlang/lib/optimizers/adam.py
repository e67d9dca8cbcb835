import optax

from . import OPTIMIZERS


@OPTIMIZERS.register("adam", cite="Kingma & Ba, Adam: A Method for Stochastic Optimization, ICLR 2015")
def adam(lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
    """Adam: bias-corrected adaptive moment estimation.

    m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2
    p <- p - lr * m_hat / (sqrt(v_hat) + eps),  m_hat = m / (1-b1^t),  v_hat = v / (1-b2^t)
    """
    return optax.with_extra_args_support(optax.adam(lr, b1=b1, b2=b2, eps=eps))
