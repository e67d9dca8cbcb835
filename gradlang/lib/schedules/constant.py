import optax

from . import SCHEDULES


@SCHEDULES.register(
    "constant",
    cite="Bottou, Curtis & Nocedal, Optimization Methods for Large-Scale Machine Learning, SIAM Review 2018",
)
def constant(value=1e-3):
    """Constant learning rate.

    lr(t) = value
    """
    return optax.constant_schedule(value)
