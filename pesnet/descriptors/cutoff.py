"""The cosine cutoff function of Behler–Parrinello symmetry functions, for every engine.

    f_c(r)  = ½ [cos(π r / r_c) + 1]          for r < r_c,   0 otherwise
    f_c'(r) = −(π / 2 r_c) sin(π r / r_c)      (1/Å)

(Behler, J. Chem. Phys. 134, 074106 (2011), eq. 4). It and its first derivative go to zero at
``r_c``, so every symmetry function built from it is continuous with a continuous gradient as
neighbours cross the cutoff sphere.

Two evaluations, both here so that no engine re-derives the cutoff:

* :func:`cosine_cutoff` from r, with ``np.sin`` (the training-time features);
* :func:`cutoff_cosine` then :func:`cutoff_from_cosine` from cos x (x = π r / r_c), with
  sin x = √((1 − cos x)(1 + cos x)) on [0, π]: a float64 sin costs ~7 such operations, and
  these write into caller-owned buffers (the prediction-time evaluator, and pair cutoffs
  f_c(r_jk) of the angular terms). The two agree to a few ulp.
"""

from __future__ import annotations

import numpy as np


def cutoff_slope(cutoff: float) -> float:
    """−π / (2 r_c) (1/Å): f_c'(r) = ``cutoff_slope(r_c)`` · sin(π r / r_c)."""
    return -0.5 * np.pi / cutoff


def cosine_cutoff(r: np.ndarray, cutoff: float, derivative: bool = True):
    """Cosine cutoff and its derivative, elementwise.

    ``r`` is any-shaped distances (Å); ``cutoff`` in Å. Returns ``(f, df_dr)`` with the shape of
    ``r`` (``df_dr`` in 1/Å; ``None`` when ``derivative`` is false). Both are exactly zero at and
    beyond the cutoff.
    """
    r = np.asarray(r, dtype=float)
    inside = r < cutoff
    x = r * (np.pi / cutoff)
    f = 0.5 * (np.cos(x) + 1.0)
    f *= inside
    if not derivative:
        return f, None
    df = cutoff_slope(cutoff) * np.sin(x)
    df *= inside
    return f, df


def cutoff_cosine(r: np.ndarray, cutoff: float, out=None, where=True, phase=None) -> np.ndarray:
    """cos x with x = π r / r_c, the shape of ``r`` (Å).

    ``phase``: buffer for x (default a new array); ``out``: buffer for cos x (default x's);
    ``where``: compute cos x only there (elsewhere ``out`` keeps its values, x if ``out`` is
    not given).
    """
    x = np.multiply(r, np.pi / cutoff, out=phase)
    return np.cos(x, out=x if out is None else out, where=where)


def cutoff_from_cosine(cos_x: np.ndarray, derivative: bool = True, out=None, sine_out=None):
    """``(f_c, sin x)`` from cos x (x = π r / r_c in [0, π]), each the shape of ``cos_x``.

    f_c = ½ (1 + cos x); sin x = √((1 − cos x)(1 + cos x)) (``None`` unless ``derivative``),
    so f_c' = :func:`cutoff_slope` · sin x. ``out``/``sine_out``: buffers. Masking (f_c = 0
    beyond the cutoff) is the caller's: pass cos x = −1 there, or multiply by a mask.
    """
    f = np.add(cos_x, 1.0, out=out)                     # 1 + cos x
    sine = None
    if derivative:
        sine = np.subtract(1.0, cos_x, out=sine_out)
        sine *= f
        np.maximum(sine, 0.0, out=sine)
        np.sqrt(sine, out=sine)
    f *= 0.5
    return f, sine
