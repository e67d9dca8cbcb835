"""Export ``linnerud.npz`` from scikit-learn's bundled copy of the Linnerud data (no download).

Run once from anywhere:  python examples/data/export_linnerud.py
Writes linnerud.npz next to this file (see README.md): 20 middle-aged men, three exercise counts
(chins, situps, jumps) and three physiological measurements (weight, waist, pulse); both tables as
shipped and standardised per column (population sd, as sklearn's StandardScaler).
"""
from pathlib import Path

import numpy as np
from sklearn.datasets import load_linnerud

HERE = Path(__file__).resolve().parent


def standardise(a):
    return (a - a.mean(axis=0)) / a.std(axis=0)


def main() -> None:
    d = load_linnerud()
    X, Y = d.data.astype(np.float64), d.target.astype(np.float64)
    np.savez(HERE / "linnerud.npz", X_raw=X, Y_raw=Y, X=standardise(X), Y=standardise(Y))


if __name__ == "__main__":
    main()
