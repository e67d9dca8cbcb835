import optax

from . import OPTIMIZERS


@OPTIMIZERS.register(
    "radam",
    cite="Liu, Jiang, He, Chen, Liu, Gao & Han, On the Variance of the Adaptive Learning Rate and "
    "Beyond, ICLR 2020",
)
def radam(lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, threshold=5.0):
    """RAdam: Adam with the variance of the adaptive rate rectified.

    rho_inf = 2/(1-b2) - 1;  rho_t = rho_inf - 2 t b2^t / (1-b2^t)
    r_t = sqrt((rho_t-4)(rho_t-2) rho_inf / ((rho_inf-4)(rho_inf-2) rho_t))
    p <- p - lr * (r_t m_hat / (sqrt(v_hat) + eps)  if rho_t >= threshold  else  m_hat)
    """
    return optax.with_extra_args_support(optax.radam(lr, b1=b1, b2=b2, eps=eps, threshold=threshold))
