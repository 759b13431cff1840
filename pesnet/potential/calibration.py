"""Calibrating an ensemble's spread: one scale factor fitted on held-out errors.

Given validation errors ``e`` and the raw ensemble standard deviations ``σ`` (over M members):

* ``"nll"``: the factor ``s`` minimising the Gaussian NLL of ``e`` under N(0, (sσ)²);
  setting ``d NLL / d s = 0`` gives ``s² = mean(e² / σ²)``.
* ``"musil"``: the committee rescaling of Musil et al., J. Chem. Theory Comput. 15, 906
  (2019), eq. 10, which corrects for the finite committee:
  ``α² = −1/M + (M − 3)/(M − 1) · mean(e² / σ²)`` (σ² the unbiased committee variance),
  floored at a small positive value. It needs M ≥ 4; smaller committees fall back to ``"nll"``.

The calibrated spread is ``s · σ``; the raw ``σ`` stays available.
"""

from __future__ import annotations

import numpy as np

from pesnet.errors import InputError

_FLOOR = 1e-12


def fit_spread_scale(errors, std, method: str = "nll", n_members: int | None = None) -> float:
    """Scale factor for the ensemble spread (see module doc); ``errors``, ``std`` same shape."""
    if method == "musil" and n_members is not None and n_members < 4:
        method = "nll"
    errors = np.ravel(np.asarray(errors, float))
    std = np.ravel(np.asarray(std, float))
    keep = std > _FLOOR
    if not keep.any():
        return 1.0
    ratio = np.mean(np.square(errors[keep]) / np.square(std[keep]))
    if method == "nll":
        return float(np.sqrt(ratio))
    if method == "musil":
        if n_members is None:
            raise InputError("the Musil rescaling needs the committee size n_members")
        alpha2 = -1.0 / n_members + (n_members - 3) / (n_members - 1) * ratio
        return float(np.sqrt(max(alpha2, _FLOOR)))
    raise InputError(f"unknown calibration method {method!r}; use 'nll' or 'musil'")
