import optax

from . import SCHEDULES


@SCHEDULES.register(
    "cosine",
    cite="Loshchilov & Hutter, SGDR: Stochastic Gradient Descent with Warm Restarts, ICLR 2017",
)
def cosine(init=1e-3, steps=1000, alpha=0.0, exponent=1.0):
    """Cosine decay from ``init`` to ``alpha * init`` over ``steps`` steps.

    lr(t) = init * ((1 - alpha) * (0.5 * (1 + cos(pi * min(t, steps) / steps)))^exponent + alpha)
    (optax.cosine_decay_schedule(init, steps, alpha, exponent).)
    """
    return optax.cosine_decay_schedule(init, int(steps), alpha, exponent)
