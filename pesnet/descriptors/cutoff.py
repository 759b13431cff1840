"""The cosine cutoff function of Behler–Parrinello symmetry functions.

    f_c(r) = ½ [cos(π r / r_c) + 1]   for r < r_c,   0 otherwise

(Behler, J. Chem. Phys. 134, 074106 (2011), eq. 4). It and its first derivative go to zero at
``r_c``, so every symmetry function built from it is continuous with a continuous gradient as
neighbours cross the cutoff sphere.
"""

from __future__ import annotations

import numpy as np


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
    df = (-0.5 * np.pi / cutoff) * np.sin(x)
    df *= inside
    return f, df
