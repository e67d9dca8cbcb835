"""Export digits_completion.npz, the matrix-completion gallery's data, from digits.npz (no downloads).

Run from anywhere:  python examples/data/completion.py
The matrix is a real one: the first 40 images of digits.npz (40 x 64 pixel intensities in [0, 1]).
Half its entries are hidden at random (NumPy's default_rng(0)); see README.md.
"""
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROWS = 40          # images
FRACTION = 0.5     # of the entries observed


def main():
    M = np.load(HERE / "digits.npz")["X"][:ROWS].astype(np.float64)
    mask = (np.random.default_rng(0).random(M.shape) < FRACTION).astype(np.float64)
    arrays = {"M": M, "mask": mask, "M_obs": M * mask}
    np.savez_compressed(HERE / "digits_completion.npz", **arrays)
    print("digits_completion.npz:", ", ".join(f"{k}: {v.dtype}{list(v.shape)}" for k, v in arrays.items()),
          f"observed {int(mask.sum())} of {mask.size}")


if __name__ == "__main__":
    main()
