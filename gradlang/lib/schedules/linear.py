import optax

from . import SCHEDULES


@SCHEDULES.register(
    "linear",
    cite="Defazio, Cutkosky, Mehta & Mishchenko, When, Why and How Much? Adaptive Learning Rate "
    "Scheduling by Refinement, arXiv:2310.07831, 2023",
)
def linear(init=1e-3, steps=1000, end=0.0, begin=0):
    """Linear decay (or ramp) from ``init`` to ``end`` over ``steps`` steps after ``begin``.

    lr(t) = init + (end - init) * clip((t - begin) / steps, 0, 1)
    (optax.linear_schedule(init, end, steps, begin): note ``steps`` comes before ``end`` here.)
    """
    return optax.linear_schedule(init, end, int(steps), int(begin))
