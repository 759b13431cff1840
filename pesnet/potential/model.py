"""The Behler–Parrinello ensemble potential.

    E = Σ_i E_i,   E_i = NN_{Z_i}((G_i − μ_{Z_i}) / s_{Z_i}) + e_{Z_i}

one ensemble MLP per element Z on the standardised ACSF features G_i (scalers μ, s from the
training split) plus a per-element reference energy e_Z (eV/atom, least squares on the training
energies). Forces F = −∂E/∂r = −Jᵀ ∂E/∂G through the sparse descriptor Jacobian
(:mod:`pesnet.descriptors.jacobian`); stress σ = (1/V) ∂E/∂ε through the strain derivatives.

Predictions are the ensemble mean with the committee standard deviation as the uncertainty
(:func:`pesnet.nn.prediction.committee_std`, ddof = 1, the one convention of
:class:`pesnet.nn.prediction.Prediction`), scaled by calibration factors fitted on the
validation split (raw spreads stay available).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from pesnet.data.schema import VOIGT
from pesnet.data.validate import check_structure
from pesnet.descriptors.jacobian import DescriptorJacobian, strain_gradient
from pesnet.errors import InputError, NonFiniteResultError
from pesnet.nn.prediction import Prediction


class MemberOutputs(NamedTuple):
    """Every member's values for a batch (M members, n configurations, N atoms).

    ``energy`` (M, n) eV; ``energies`` (M, N) eV per atom; ``forces`` (M, N, 3) eV/Å or None;
    ``virial`` (M, n, 3, 3) = ∂E/∂ε in eV, or None (divide by the volume for the stress).
    """

    energy: np.ndarray
    energies: np.ndarray
    forces: np.ndarray | None
    virial: np.ndarray | None


class PotentialPrediction(NamedTuple):
    """The potential's predictions with uncertainty (n configurations, N atoms over all).

    Each quantity is an ensemble :class:`~pesnet.nn.prediction.Prediction` (mean and committee
    standard deviation, ddof = 1) laid out flat. Means: ``energy`` (n,) eV, ``energies`` (N,)
    eV, ``forces`` (N, 3) eV/Å, ``stress`` (n, 6) eV/Å³ in ASE's Voigt order (NaN rows for
    non-periodic structures) or None. ``*_std``: the committee standard deviations of the same
    shapes times the calibration factor; ``*_std_raw`` uncalibrated.
    ``offsets`` (n + 1,) delimit each configuration's atoms; ``members`` holds every member's
    values when asked for.
    """

    energy: np.ndarray
    energy_std: np.ndarray
    energies: np.ndarray
    energies_std: np.ndarray
    forces: np.ndarray | None
    forces_std: np.ndarray | None
    stress: np.ndarray | None
    stress_std: np.ndarray | None
    energy_std_raw: np.ndarray
    forces_std_raw: np.ndarray | None
    offsets: np.ndarray
    members: MemberOutputs | None = None


class Potential:
    """An ensemble Behler–Parrinello potential (see the module doc).

    ``descriptor``: :class:`~pesnet.descriptors.ACSF`; ``networks``: {Z: MLP with scalar output
    and n_features inputs, all with the same number of members}; ``scalers``: {Z: (mean, scale)}
    each (F,); ``reference_energies``: {Z: eV/atom}; ``calibration``: {"energy": s_E,
    "forces": s_F} spread factors; ``metadata``: JSON-able training information.
    """

    def __init__(self, descriptor, networks, scalers, reference_energies, calibration=None,
                 metadata=None):
        self.descriptor = descriptor
        self.networks = dict(networks)
        self.scalers = {int(z): (np.asarray(m, float), np.asarray(s, float))
                        for z, (m, s) in scalers.items()}
        self.reference_energies = {int(z): float(e) for z, e in reference_energies.items()}
        self.calibration = {"energy": 1.0, "forces": 1.0, **(calibration or {})}
        self.metadata = dict(metadata or {})
        elements = tuple(sorted(self.networks))
        if elements != tuple(descriptor.elements):
            raise InputError(f"networks for elements {elements} do not match the descriptor's "
                             f"{tuple(descriptor.elements)}")
        sizes = {net.n_members for net in self.networks.values()}
        if len(sizes) != 1:
            raise InputError(f"all element networks need the same ensemble size, got {sizes}")

    @property
    def elements(self) -> tuple[int, ...]:
        return tuple(self.descriptor.elements)

    @property
    def n_members(self) -> int:
        return next(iter(self.networks.values())).n_members

    # -- evaluation on prepared features ------------------------------------------------
    def evaluate(self, batch, forces: bool = True, virial: bool = False,
                 operator: DescriptorJacobian | None = None) -> MemberOutputs:
        """Every member's energies (and forces, virial) for a standardised ``FeatureBatch``.

        ``operator`` may pass a prebuilt :class:`DescriptorJacobian` of the batch (training reuses
        one per batch across epochs).
        """
        n_atoms = len(batch.numbers)
        energies, g, _ = self.forward(batch, input_gradient=forces or virial)
        energy = np.add.reduceat(energies, batch.offsets[:-1], axis=1)
        f = w = None
        if forces:
            if operator is None:
                operator = DescriptorJacobian(batch.centres, batch.neighbours, batch.derivatives,
                                         n_atoms)
            f = operator.forces(g)
        if virial:
            w = strain_gradient(g, batch.strain, batch.offsets)
        return MemberOutputs(energy, energies, f, w)

    def forward(self, batch, input_gradient: bool = True):
        """Per-atom energies (M, N) eV, ``g = ∂E/∂G`` (M, N, F) or None, and each element's
        forward cache {Z: ForwardCache} (what training's backward passes need)."""
        self._check_covered(batch)
        n_atoms = len(batch.numbers)
        m = self.n_members
        energies = np.empty((m, n_atoms))
        g = np.zeros((m, n_atoms, self.descriptor.n_features)) if input_gradient else None
        caches = {}
        for z, net in self.networks.items():
            part = batch.elements.get(z)
            if part is None or len(part.rows) == 0:
                continue
            cache = caches[z] = net.forward(part.values)
            energies[:, part.rows] = cache.output[:, :, 0] + self.reference_energies[z]
            if input_gradient:
                g[:, part.rows] = net.input_gradient(cache)
        return energies, g, caches

    def check_features(self, features) -> None:
        """Raise a clear error unless a :class:`~pesnet.descriptors.features_file.FeaturesFile`
        was computed with exactly this model's descriptor parameters."""
        features.check_descriptor(self.descriptor)

    def _check_covered(self, batch) -> None:
        known = np.isin(batch.numbers, self.elements)
        if not known.all():
            z = int(batch.numbers[~known][0])
            raise InputError(f"the model has no network for element Z={z}")

    # -- prediction on structures -------------------------------------------------------
    def predict(self, atoms, forces: bool = True, stress: bool = False,
                members: bool = False) -> PotentialPrediction:
        """Predict ``atoms`` (an :class:`ase.Atoms` or a list of them); see
        :class:`PotentialPrediction`.

        Stress is computed for periodic structures only (NaN rows otherwise). Runs through
        :class:`~pesnet.potential.structures.StructureEvaluator` (forces from the bond-level
        vector–Jacobian product, no stored Jacobian), the same path as the ASE calculator.
        """
        single = not isinstance(atoms, (list, tuple))
        atoms_list = [atoms] if single else list(atoms)
        if not atoms_list:
            raise InputError("nothing to predict: empty list of structures")
        from ase import Atoms

        for k, structure in enumerate(atoms_list):
            if not isinstance(structure, Atoms):
                where = "" if single else f" (structure {k})"
                raise InputError(f"predict takes ase.Atoms or a list of them, got "
                                 f"{type(structure).__name__}{where}")
            check_structure(structure, None if single else f"structure {k}")
        out = self.structure_evaluator().evaluate(atoms_list, forces=forces, virial=stress)
        offsets = np.concatenate([[0], np.cumsum([len(a) for a in atoms_list])])
        return self.summarize(out, offsets, atoms_list if stress else None, members)

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_structure_evaluator", None)  # a cache, rebuilt on demand
        return state

    def structure_evaluator(self):
        """The :class:`~pesnet.potential.structures.StructureEvaluator` of this potential
        (made once and kept: it holds the descriptor's work plan and scratch space)."""
        from pesnet.potential.structures import StructureEvaluator

        evaluator = self.__dict__.get("_structure_evaluator")
        if evaluator is None or evaluator.descriptor is not self.descriptor:
            evaluator = self.__dict__["_structure_evaluator"] = StructureEvaluator(self)
        return evaluator

    def summarize(self, out: MemberOutputs, offsets, atoms_list=None,
                  members: bool = False) -> PotentialPrediction:
        """Ensemble means and (calibrated) spreads of :class:`MemberOutputs`; a
        :class:`~pesnet.errors.NonFiniteResultError` if any member's energy, forces or virial
        is not finite (the inputs were checked, so that is an overflow, never an answer)."""
        for name, values in (("energy", out.energy), ("forces", out.forces),
                             ("stress", out.virial)):
            if values is not None and not np.isfinite(values).all():
                raise NonFiniteResultError(
                    f"the model gave a non-finite {name} (an overflow in its descriptor or "
                    f"networks: far outside what it was trained on)")
        s_e, s_f = self.calibration["energy"], self.calibration["forces"]
        energy, energies = Prediction.of_members(out.energy), Prediction.of_members(out.energies)
        forces = None if out.forces is None else Prediction.of_members(out.forces)
        stress = None
        if out.virial is not None and atoms_list is not None:
            volumes = np.array([a.get_volume() if np.any(a.pbc) else np.nan for a in atoms_list])
            sigma = out.virial / volumes[None, :, None, None]
            stress = Prediction.of_members(sigma[:, :, VOIGT[0], VOIGT[1]])
        return PotentialPrediction(
            energy=energy.mean,
            energy_std=s_e * energy.std,
            energies=energies.mean,
            energies_std=s_e * energies.std,
            forces=None if forces is None else forces.mean,
            forces_std=None if forces is None else s_f * forces.std,
            stress=None if stress is None else stress.mean,
            stress_std=None if stress is None else s_f * stress.std,
            energy_std_raw=energy.std,
            forces_std_raw=None if forces is None else forces.std,
            offsets=np.asarray(offsets),
            members=out if members else None,
        )

    def __repr__(self) -> str:
        from ase.data import chemical_symbols

        nets = ", ".join(f"{chemical_symbols[z]}: {net.sizes}" for z, net in self.networks.items())
        return f"Potential(members={self.n_members}, networks={{{nets}}})"
