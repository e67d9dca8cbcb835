import optax

from . import OPTIMIZERS


@OPTIMIZERS.register(
    "lion",
    cite="Chen, Liang, Huang, Real, Wang, Pham, Dong, Luong, Hsieh, Lu & Le, Symbolic Discovery of "
    "Optimization Algorithms, NeurIPS 2023",
)
def lion(lr=1e-4, b1=0.9, b2=0.99, weight_decay=1e-3):
    """Lion: sign of an interpolated momentum, with decoupled weight decay.

    p <- p - lr * (sign(b1 m + (1-b1) g) + weight_decay * p);  m <- b2 m + (1-b2) g
    """
    return optax.with_extra_args_support(optax.lion(lr, b1=b1, b2=b2, weight_decay=weight_decay))
