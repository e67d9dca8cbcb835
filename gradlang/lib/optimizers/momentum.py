import optax

from . import OPTIMIZERS


@OPTIMIZERS.register(
    "momentum",
    cite="Polyak, Some methods of speeding up the convergence of iteration methods, "
    "USSR Computational Mathematics and Mathematical Physics 1964",
)
def momentum(lr=1e-2, beta=0.9):
    """SGD with heavy-ball (Polyak) momentum.

    m <- beta * m + g;  p <- p - lr * m
    """
    return optax.with_extra_args_support(optax.sgd(lr, momentum=beta))
