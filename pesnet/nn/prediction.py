"""What an ensemble answers: the mean over its members and their committee spread.

For the values y_m (m = 1..M) of M members at one point:

    ȳ = (1/M) Σ_m y_m
    σ = √( Σ_m (y_m − ȳ)² / (M − 1) )      (ddof = 1, the unbiased committee variance;
                                             σ = 0 for a single member)

ddof = 1 is the convention of the committee models (Musil et al., J. Chem. Theory Comput. 15,
906 (2019), whose rescaling :mod:`pesnet.potential.calibration` fits assumes it) and of every
spread pesnet reports: the :class:`~pesnet.nn.regressor.EnsembleRegressor` and the potential's
energies, forces and stresses. Defined here once, below both.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["Prediction", "committee_std"]


def committee_std(values: np.ndarray) -> np.ndarray:
    """Committee standard deviation over the member axis 0 (ddof = 1; zeros for one member):
    ``values`` (M, ...) → (...), in the units of ``values``."""
    values = np.asarray(values)
    if values.shape[0] < 2:
        return np.zeros(values.shape[1:])
    return values.std(axis=0, ddof=1)


class Prediction(NamedTuple):
    """Ensemble mean and committee standard deviation (ddof = 1, see the module doc), both of
    the shape of one member's values and in their units."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def of_members(cls, values: np.ndarray) -> Prediction:
        """The prediction of member values ``values`` (M, ...)."""
        values = np.asarray(values)
        return cls(values.mean(axis=0), committee_std(values))
