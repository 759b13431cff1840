"""Descriptors: Behler–Parrinello atom-centred symmetry functions and their features file.

Public API: :class:`ACSF`, :class:`ACSFResult`, :func:`default_parameters`,
:func:`default_acsf`, :func:`featurize`, :func:`featurize_batch`, :class:`FeaturesFile`,
:class:`FeatureBatch`, :class:`Stats`, :func:`contract_blocks` (forces from the
derivative blocks), :func:`contract_strain` (stress from the strain derivatives).
"""

from pesnet.descriptors.acsf import ACSF, ACSFResult
from pesnet.descriptors.defaults import default_acsf, default_parameters
from pesnet.descriptors.derivatives import contract_blocks, contract_strain
from pesnet.descriptors.features_file import FeatureBatch, FeaturesFile, Stats
from pesnet.descriptors.featurize import featurize, featurize_batch, load_descriptor_params

__all__ = [
    "ACSF",
    "ACSFResult",
    "FeatureBatch",
    "FeaturesFile",
    "Stats",
    "contract_blocks",
    "contract_strain",
    "default_acsf",
    "default_parameters",
    "featurize",
    "featurize_batch",
    "load_descriptor_params",
]
