import optax

from . import OPTIMIZERS, gradient_transform


@OPTIMIZERS.register(
    "add_noise",
    cite="Neelakantan, Vilnis, Le, Sutskever, Kaiser, Kurach & Martens, Adding Gradient Noise "
    "Improves Learning for Very Deep Networks, arXiv:1511.06807, 2015",
)
def add_noise(eta=0.01, gamma=0.55, seed=0, opt=None):
    """Add annealed Gaussian noise to the gradient (before ``opt`` when given).

    g <- g + N(0, eta / (1 + t)^gamma);  then opt's update on g
    ``chain(add_noise(0.01), adam())`` = ``add_noise(0.01, opt=adam())``.
    """
    tx = lambda: optax.add_noise(eta, gamma, key=int(seed))  # noqa: E731
    return gradient_transform("add_noise", tx, opt, eta, gamma, seed)
