"""Descriptors: Behler–Parrinello atom-centred symmetry functions and their features file.

Public API: :class:`ACSF`, :class:`ACSFResult`, :func:`default_parameters`.
"""

from pesnet.descriptors.acsf import ACSF, ACSFResult

__all__ = ["ACSF", "ACSFResult"]
