import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax, softmax
from sklearn.linear_model import LogisticRegression, Ridge

d = np.load("examples/data/diabetes.npz")
X, y = d["X"], d["y_std"]
N, D = X.shape
A = np.c_[X, np.ones(N)]                                   # [w, b]

# least_squares.grad: min mean((X w + b - y)^2)
theta = np.linalg.lstsq(A, y, rcond=None)[0]
mse = np.mean((A @ theta - y) ** 2)
print("least_squares objective", mse, "r2", 1 - mse / y.var())

# ridge.grad: min mean(0.5 (X w + b - y)^2) + lam |w|^2, lam = 0.001 (b unpenalised)
lam = 0.001
P = np.diag(np.r_[np.full(D, 2 * lam), 0.0])
theta = np.linalg.solve(A.T @ A / N + P, A.T @ y / N)
r = A @ theta - y
print("ridge objective", np.mean(0.5 * r**2) + lam * theta[:D] @ theta[:D], "r2", 1 - np.mean(r**2) / y.var())
sk = Ridge(alpha=2 * N * lam).fit(X, y)                    # the same problem
assert np.allclose(sk.coef_, theta[:D]) and np.isclose(sk.intercept_, theta[D])

# logistic_regression.grad: min mean(softplus(z) - y z) + lam |w|^2, z = X w + b, lam = 0.001
c = np.load("examples/data/breast_cancer.npz")
X, y = c["X"], c["y"]
N, D = X.shape
A = np.c_[X, np.ones(N)]
lam = 0.001
def f(t):
    z = A @ t
    return np.mean(np.logaddexp(0, z) - y * z) + lam * t[:D] @ t[:D]
def g(t):
    return A.T @ (1 / (1 + np.exp(-(A @ t))) - y) / N + 2 * lam * np.r_[t[:D], 0.0]
res = minimize(f, np.zeros(D + 1), jac=g, method="L-BFGS-B", options=dict(gtol=1e-12, ftol=1e-15, maxiter=10000))
t = res.x
print("logistic objective", f(t), "accuracy", np.mean((A @ t > 0) == (y > 0.5)), "|grad|", np.linalg.norm(g(t)))
sk = LogisticRegression(C=1 / (2 * N * lam), tol=1e-12, max_iter=10000).fit(X, y)   # the same problem
assert np.allclose(sk.coef_[0], t[:D], atol=1e-5) and np.isclose(sk.intercept_[0], t[D], atol=1e-5)

# softmax_regression.grad: min mean(-sum(Y * log_softmax(X W + c))) + lam |W|^2, lam = 0.001
g_ = np.load("examples/data/digits.npz")
X, Y, labels = g_["X"], g_["y_onehot"], g_["y"]
N, D = X.shape; K = Y.shape[1]
def fs(t):
    W, c = t[: D * K].reshape(D, K), t[D * K :]
    Z = X @ W + c
    return -np.mean(np.sum(Y * log_softmax(Z, axis=1), axis=1)) + lam * np.sum(W**2)
def gs(t):
    W, c = t[: D * K].reshape(D, K), t[D * K :]
    G = (softmax(X @ W + c, axis=1) - Y) / N
    return np.r_[(X.T @ G + 2 * lam * W).ravel(), G.sum(0)]
res = minimize(fs, np.zeros(D * K + K), jac=gs, method="L-BFGS-B", options=dict(gtol=1e-12, ftol=1e-15, maxiter=10000))
t = res.x
Z = X @ t[: D * K].reshape(D, K) + t[D * K :]
print("softmax objective", fs(t), "accuracy", np.mean(Z.argmax(1) == labels), "|grad|", np.linalg.norm(gs(t)))
