"""Export the gallery's data sets from scikit-learn's bundled copies (no downloads).

Run once from anywhere:  python examples/data/export.py
Writes diabetes.npz, breast_cancer.npz and digits.npz next to this file. See README.md for
the source, transformation and licence of each file.
"""
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits

HERE = Path(__file__).resolve().parent


def standardise(a, axis=0):
    """(a - mean) / sd with the population sd (ddof = 0), as sklearn's StandardScaler."""
    return (a - a.mean(axis=axis)) / a.std(axis=axis)


def diabetes():
    d = load_diabetes()  # X as shipped: columns mean-centred and scaled to unit l2 norm
    X = d.data.astype(np.float64)
    y = d.target.astype(np.float64)
    return {"X": X, "y": y, "y_std": standardise(y)}


def breast_cancer():
    d = load_breast_cancer()
    X = standardise(d.data.astype(np.float64))
    y = d.target.astype(np.float64)  # 1 = benign, 0 = malignant (sklearn's coding)
    return {"X": X, "y": y}


def digits():
    d = load_digits()  # 8x8 images, pixel values 0..16
    X = d.data.astype(np.float64) / 16.0
    y = d.target.astype(np.int64)
    y_onehot = np.eye(10, dtype=np.float64)[y]
    return {"X": X, "y": y, "y_onehot": y_onehot}


def main():
    for name, make in [("diabetes", diabetes), ("breast_cancer", breast_cancer), ("digits", digits)]:
        arrays = make()
        path = HERE / f"{name}.npz"
        np.savez_compressed(path, **arrays)
        shapes = ", ".join(f"{k}: {v.dtype}{list(v.shape)}" for k, v in arrays.items())
        print(f"{path.name}: {shapes}")


if __name__ == "__main__":
    main()
