import optax

from . import SCHEDULES


@SCHEDULES.register(
    "warmup_cosine",
    cite="Goyal et al., Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour, arXiv:1706.02677, "
    "2017; Loshchilov & Hutter, SGDR: Stochastic Gradient Descent with Warm Restarts, ICLR 2017",
)
def warmup_cosine(peak=1e-3, warmup=100, steps=1000, end=0.0, init=0.0, exponent=1.0):
    """Linear warmup from ``init`` to ``peak``, then cosine decay to ``end``; ``steps`` is the total.

    lr(t) = init + (peak - init) t / warmup                                            t < warmup
    lr(t) = end + (peak - end) (0.5 (1 + cos(pi (t - warmup) / (steps - warmup))))^exponent   t >= warmup
    (optax.warmup_cosine_decay_schedule(init, peak, warmup, steps, end, exponent): peak first here.)
    """
    return optax.warmup_cosine_decay_schedule(init, peak, int(warmup), int(steps), end, exponent)
