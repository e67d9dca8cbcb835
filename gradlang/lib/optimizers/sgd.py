import optax

from . import OPTIMIZERS


@OPTIMIZERS.register("sgd", cite="Robbins & Monro, A Stochastic Approximation Method, Annals of Mathematical Statistics 1951")
def sgd(lr=1e-2):
    """Plain stochastic gradient descent.

    p <- p - lr * g
    """
    return optax.with_extra_args_support(optax.sgd(lr))
