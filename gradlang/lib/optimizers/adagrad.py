import optax

from . import OPTIMIZERS


@OPTIMIZERS.register(
    "adagrad",
    cite="Duchi, Hazan & Singer, Adaptive Subgradient Methods for Online Learning and Stochastic "
    "Optimization, JMLR 2011",
)
def adagrad(lr=1e-2, initial_accumulator=0.1, eps=1e-7):
    """AdaGrad: per-coordinate step sizes from the sum of squared gradients.

    s <- s + g^2  (s_0 = initial_accumulator);  p <- p - lr * g / sqrt(s + eps)
    """
    return optax.with_extra_args_support(
        optax.adagrad(lr, initial_accumulator_value=initial_accumulator, eps=eps)
    )
