"""Descriptors: pluggable per-atom features (Behler–Parrinello ACSF, ANI AEVs), features file.

Every descriptor kind follows :class:`~pesnet.descriptors.protocol.Descriptor` and is found by
name through :mod:`~pesnet.descriptors.registry`; everything above this package goes through
those two. Public API: :class:`ACSF`, :class:`ACSFResult` (= :class:`DescriptorResult`),
:class:`ANIDescriptor` and :func:`default_ani` (ANI-1x-style AEVs, kind ``"ani"``),
:class:`Descriptor`, :class:`BondDescriptor` (base of new kinds), :func:`register`,
:func:`descriptor_from_params`, :func:`kinds`, :func:`default_parameters`,
:func:`default_acsf`, :func:`featurize`, :func:`featurize_batch`, :class:`FeaturesFile`,
:class:`FeatureBatch`, :class:`Stats`, :func:`contract_blocks` (forces from the derivative
blocks), :func:`contract_strain` (stress from the strain derivatives).
"""

from pesnet.descriptors.acsf import ACSF, ACSFResult
from pesnet.descriptors.ani import ANIDescriptor, default_ani
from pesnet.descriptors.bond_descriptor import BondDescriptor
from pesnet.descriptors.defaults import default_acsf, default_parameters
from pesnet.descriptors.features_file import FeatureBatch, FeaturesFile, Stats
from pesnet.descriptors.featurize import featurize, featurize_batch, load_descriptor_params
from pesnet.descriptors.jacobian import contract_blocks, contract_strain
from pesnet.descriptors.protocol import Descriptor, DescriptorResult, Evaluator
from pesnet.descriptors.registry import descriptor_from_params, kinds, register

__all__ = [
    "ACSF",
    "ACSFResult",
    "ANIDescriptor",
    "BondDescriptor",
    "Descriptor",
    "DescriptorResult",
    "Evaluator",
    "FeatureBatch",
    "FeaturesFile",
    "Stats",
    "contract_blocks",
    "contract_strain",
    "default_acsf",
    "default_ani",
    "default_parameters",
    "descriptor_from_params",
    "featurize",
    "featurize_batch",
    "kinds",
    "load_descriptor_params",
    "register",
]
