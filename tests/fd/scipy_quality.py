#!/usr/bin/env python3
"""Reference KID and improved precision/recall for SampleQualityTests, written from the papers with numpy/scipy.

usage: scipy_quality.py REAL.npy GENERATED.npy K   (two float arrays (N, d) with the same d; K the neighbour)
Prints three lines with repr precision:
  kid        the unbiased MMD² of the two whole sets under k(x, y) = (x.y / d + 1)^3 (Bińkowski et al. 2018, eq. 3)
  precision  the share of generated points within some real point's k-th-neighbour distance of it
  recall     the share of real points within some generated point's k-th-neighbour distance of it
             (Kynkäänniemi et al. 2019; distances from scipy.spatial.distance.cdist, a point on the boundary inside)
"""
import sys

import numpy as np
from scipy.spatial.distance import cdist


def unbiased_mmd2(x, y):
    d = x.shape[1]
    kernel = lambda a, b: (a @ b.T / d + 1.0) ** 3
    kxx, kyy, kxy = kernel(x, x), kernel(y, y), kernel(x, y)
    m, n = len(x), len(y)
    return ((kxx.sum() - np.trace(kxx)) / (m * (m - 1))
            + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
            - 2.0 * kxy.mean())


def kth_neighbour_radius(points, k):
    distances = cdist(points, points)
    return np.sort(distances, axis=1)[:, k]        # column 0 is the point itself


def covered(points, centres, radii):
    return float(np.mean((cdist(points, centres) <= radii[None, :]).any(axis=1)))


def main(real_path, generated_path, k):
    real = np.load(real_path).astype(np.float64)
    generated = np.load(generated_path).astype(np.float64)
    if real.ndim != 2 or generated.ndim != 2 or real.shape[1] != generated.shape[1]:
        sys.exit(f"need (N, d) arrays with the same d, got {real.shape} and {generated.shape}")
    print(repr(float(unbiased_mmd2(generated, real))))
    print(repr(covered(generated, real, kth_neighbour_radius(real, k))))
    print(repr(covered(real, generated, kth_neighbour_radius(generated, k))))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
