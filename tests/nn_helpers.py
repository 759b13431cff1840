"""Shared helpers of the nn tests: finite-difference gradients and relative errors."""

import numpy as np


def fd_gradient(f, x, h=1e-6, mask=None):
    """Central finite-difference gradient of the scalar function ``f`` at array ``x``.

    ``x`` is perturbed in place and restored; ``mask`` (bool, shape of x) selects entries to
    differentiate (others get 0). Error O(h²) + O(eps/h).
    """
    g = np.zeros_like(x, dtype=np.float64)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    idx = range(flat.size) if mask is None else np.flatnonzero(mask)
    for i in idx:
        old = flat[i]
        flat[i] = old + h
        fp = f()
        flat[i] = old - h
        fm = f()
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * h)
    return g


def rel_error(a, b):
    """‖a - b‖ / max(‖a‖, ‖b‖): one number for a whole gradient."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    scale = max(np.linalg.norm(a), np.linalg.norm(b), 1e-300)
    return np.linalg.norm(a - b) / scale


def param_mask(mlp):
    """True on the real parameters of ``mlp.params`` (False on alignment padding)."""
    mask = np.zeros(mlp.params.shape, bool)
    Ws, bs = mlp.layer_views(mask)
    for W, b in zip(Ws, bs):
        W[...] = True
        b[...] = True
    return mask
