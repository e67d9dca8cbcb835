import optax

from . import OPTIMIZERS


@OPTIMIZERS.register(
    "nesterov",
    cite="Nesterov, A method for solving the convex programming problem with convergence rate "
    "O(1/k^2), Soviet Mathematics Doklady 1983; Sutskever, Martens, Dahl & Hinton, On the "
    "importance of initialization and momentum in deep learning, ICML 2013",
)
def nesterov(lr=1e-2, beta=0.9):
    """SGD with Nesterov momentum (look-ahead gradient, Sutskever et al. form).

    m <- beta * m + g;  p <- p - lr * (beta * m + g)
    """
    return optax.with_extra_args_support(optax.sgd(lr, momentum=beta, nesterov=True))
