import optax

from . import SCHEDULES


@SCHEDULES.register(
    "sgdr",
    cite="Loshchilov & Hutter, SGDR: Stochastic Gradient Descent with Warm Restarts, ICLR 2017",
)
def sgdr(peak=1e-3, period=1000, cycles=3, mult=1, warmup=0, end=0.0):
    """Cosine annealing with warm restarts: ``cycles`` cosine cycles, the i-th ``period * mult^i`` long.

    within cycle i (local step s, length T_i = period * mult^i, optional linear warmup from 0):
    lr = end + (peak - end) * 0.5 * (1 + cos(pi * (s - warmup) / (T_i - warmup)));  constant ``end`` after
    (optax.sgdr_schedule over warmup_cosine_decay_schedule keyword sets.)
    """
    return optax.sgdr_schedule([
        dict(init_value=0.0, peak_value=peak, warmup_steps=int(warmup), decay_steps=int(period * mult**i),
             end_value=end)
        for i in range(int(cycles))
    ])
