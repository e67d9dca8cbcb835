import optax

from . import SCHEDULES


@SCHEDULES.register(
    "exponential",
    cite="Senior, Heigold, Ranzato & Yang, An Empirical Study of Learning Rates in Deep Neural "
    "Networks for Speech Recognition, ICASSP 2013",
)
def exponential(init=1e-3, steps=1000, rate=0.5, begin=0, staircase=False, end=None):
    """Exponential decay: multiply by ``rate`` every ``steps`` steps after ``begin``.

    lr(t) = init * rate^((t - begin) / steps)   (exponent floored if staircase; t < begin gives init)
    clamped at ``end`` (a lower bound if rate < 1, else an upper bound) when given.
    (optax.exponential_decay(init, steps, rate, begin, staircase, end).)
    """
    return optax.exponential_decay(init, int(steps), rate, int(begin), bool(staircase), end)
