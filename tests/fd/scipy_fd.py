#!/usr/bin/env python3
"""Reference Fréchet distance for FrechetDistanceTests: the FID formula as FID implementations compute it.

usage: scipy_fd.py A.npy B.npy   (two float arrays, shape (N, d), same d)
Prints d² = |mu1 - mu2|² + tr S1 + tr S2 - 2 tr sqrtm(S1 S2) on one line, with repr precision. S are numpy's
unbiased covariances (rowvar=False, ddof=1); sqrtm is scipy.linalg's, of the non-symmetric product, real part taken.
"""
import sys

import numpy as np
import scipy.linalg


def main(path_a, path_b):
    a = np.load(path_a).astype(np.float64)
    b = np.load(path_b).astype(np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        sys.exit(f"need (N, d) arrays with the same d, got {a.shape} and {b.shape}")
    mu1, mu2 = a.mean(axis=0), b.mean(axis=0)
    s1 = np.cov(a, rowvar=False, ddof=1)
    s2 = np.cov(b, rowvar=False, ddof=1)
    root = scipy.linalg.sqrtm(s1 @ s2)
    if np.iscomplexobj(root):
        root = root.real
    d2 = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(root)
    print(repr(float(d2)))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
