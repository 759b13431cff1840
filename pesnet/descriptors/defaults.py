"""A sensible default ACSF parameter set from the cutoff and the elements alone.

The scheme (all lengths in Å, η in 1/Å²):

* **Radial: shifted Gaussians on an even grid.** ``n_radial`` centres
  R_s = r_min + k Δ (k = 0 … n_radial − 1) with Δ = (r_c − r_min) / n_radial, so the last
  centre sits one spacing inside the cutoff where f_c has not yet killed it; all with the same
  width, η = 4 ln 2 / Δ², so neighbouring Gaussians cross at half their height. ``r_min``
  (0.5 Å) is below any bond length. Together with G1 (always present) this resolves the radial
  distribution at the scale Δ.
* **Angular: G4 on a (η, ζ, λ) grid, within a shorter angular cutoff** r_a = min(r_c, 4 Å)
  (ANI's practice: triplets dominate the cost and grow as the cube of the range, while angular
  information matters most in the first shells; for fcc Cu, 4 Å holds the first two shells and
  makes forces ~3× cheaper than 6 Å at the same test accuracy on the shipped data — see
  ``benchmarks/accuracy.py``). η ∈ {1, 4} / r_a²: a broad
  term that sees the whole angular sphere and one that weights the first shells;
  ζ ∈ {1, 2, 4}: angular resolution from a cosine to a sharply peaked lobe; λ = ±1: lobes
  at 0° and 180°. That is 2 × 3 × 2 = 12 G4 per element pair, no G5 (with the same grid
  G5 adds little to G4 at the same cost).

For Cu at r_c = 6 Å: 1 + 8 radial + 12 angular = 21 features; for H/C/O: 3 × 9 + 6 × 12 = 99.
"""

from __future__ import annotations

import math

from pesnet.descriptors.acsf import ACSF
from pesnet.descriptors.bond_descriptor import check_new_cutoff
from pesnet.errors import InputError

#: Default range (Å) of the angular terms (see the module doc).
DEFAULT_ANGULAR_CUTOFF = 4.0


def default_parameters(elements, cutoff: float = 6.0, n_radial: int = 8,
                       angular_cutoff: float | None = None, r_min: float = 0.5,
                       zetas=(1.0, 2.0, 4.0), angular_etas=(1.0, 4.0)) -> dict:
    """Parameters (a dict for :meth:`ACSF.from_params`) by the scheme in the module doc.

    ``elements``: symbols or atomic numbers; ``cutoff`` and ``angular_cutoff`` in Å;
    ``angular_etas`` are multiples of 1/r_a² (r_a = ``angular_cutoff``, by default
    min(``cutoff``, :data:`DEFAULT_ANGULAR_CUTOFF`)).
    """
    cutoff = float(cutoff)
    if not cutoff > r_min:
        raise InputError(f"cutoff must exceed r_min = {r_min} Å, got {cutoff}")
    check_new_cutoff(cutoff)
    if n_radial < 1:
        raise InputError(f"n_radial must be at least 1, got {n_radial}")
    spacing = (cutoff - r_min) / n_radial
    eta = 4.0 * math.log(2.0) / spacing**2
    g2 = [[eta, r_min + k * spacing] for k in range(n_radial)]
    if angular_cutoff is None:
        angular_cutoff = min(cutoff, DEFAULT_ANGULAR_CUTOFF)
    r_a = float(angular_cutoff)
    g4 = [[scale / r_a**2, float(zeta), lam]
          for scale in angular_etas for zeta in zetas for lam in (-1.0, 1.0)]
    acsf = ACSF(elements, cutoff, g2=g2, g4=g4, angular_cutoff=angular_cutoff)  # validates
    return acsf.params


def default_acsf(elements, cutoff: float = 6.0, **options) -> ACSF:
    """:class:`ACSF` with :func:`default_parameters` (same arguments)."""
    return ACSF.from_params(default_parameters(elements, cutoff, **options))
