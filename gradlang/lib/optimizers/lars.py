import optax

from . import OPTIMIZERS


@OPTIMIZERS.register(
    "lars",
    cite="You, Gitman & Ginsburg, Large Batch Training of Convolutional Networks, arXiv:1708.03888, 2017",
)
def lars(lr=0.1, weight_decay=0.0, trust_coefficient=1e-3, eps=0.0, beta=0.9):
    """LARS: momentum SGD with a layer-wise trust ratio.

    u = g + weight_decay * p;  u <- trust_coefficient * ||p|| / (||u|| + eps) * u   (per array)
    m <- beta * m + lr * u;  p <- p - m
    """
    return optax.with_extra_args_support(
        optax.lars(lr, weight_decay=weight_decay, trust_coefficient=trust_coefficient, eps=eps,
                   momentum=beta)
    )
