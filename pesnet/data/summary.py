"""A dataset's summary: sizes, elements, label ranges — computed in one streaming pass."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ase.data import chemical_symbols

from pesnet.data.dataset import Dataset


@dataclass
class DatasetSummary:
    """What ``pesnet ingest`` and ``pesnet info`` print. Energies eV, forces eV/Å."""

    path: str
    n_configs: int = 0
    n_atoms: int = 0
    atoms_per_config: tuple = (0, 0)
    element_counts: dict = field(default_factory=dict)
    n_labelled_energy: int = 0
    n_labelled_forces: int = 0
    n_labelled_stress: int = 0
    energy_range: tuple = (np.nan, np.nan)
    energy_per_atom_range: tuple = (np.nan, np.nan)
    force_component_range: tuple = (np.nan, np.nan)
    max_force_norm: float = np.nan
    periodic_configs: int = 0
    config_types: dict = field(default_factory=dict)

    def format(self) -> str:
        """Human-readable multi-line text."""
        elements = ", ".join(
            f"{chemical_symbols[z]} {count}" for z, count in sorted(self.element_counts.items())
        )
        lines = [
            f"dataset        {self.path}",
            f"configurations {self.n_configs} ({self.periodic_configs} periodic)",
            f"atoms          {self.n_atoms} ({self.atoms_per_config[0]}–{self.atoms_per_config[1]} per configuration)",
            f"elements       {elements}",
            f"labels         energy {self.n_labelled_energy}, forces {self.n_labelled_forces}, stress {self.n_labelled_stress}",
            f"energy         {self.energy_range[0]:.6g} to {self.energy_range[1]:.6g} eV"
            f" ({self.energy_per_atom_range[0]:.6g} to {self.energy_per_atom_range[1]:.6g} eV/atom)",
            f"forces         components {self.force_component_range[0]:.6g} to"
            f" {self.force_component_range[1]:.6g} eV/Å, max |F| {self.max_force_norm:.6g} eV/Å",
        ]
        if self.config_types and set(self.config_types) != {""}:
            kinds = ", ".join(f"{name or '(none)'} {n}" for name, n in sorted(self.config_types.items()))
            lines.append(f"config types   {kinds}")
        return "\n".join(lines)


def summarize(path, chunk_size: int = 4096) -> DatasetSummary:
    """Stream through the dataset at ``path`` once and collect its :class:`DatasetSummary`."""
    summary = DatasetSummary(path=str(path))
    e_lo = epa_lo = f_lo = np.inf
    e_hi = epa_hi = f_hi = fmax = -np.inf
    n_min, n_max = np.inf, 0
    with Dataset(path) as ds:
        summary.n_configs = len(ds)
        summary.n_atoms = ds.n_atoms_total
        for batch in ds.iter_chunks(chunk_size):
            counts = batch.n_atoms
            n_min, n_max = min(n_min, counts.min()), max(n_max, counts.max())
            zs, zc = np.unique(batch.numbers, return_counts=True)
            for z, c in zip(zs.tolist(), zc.tolist()):
                summary.element_counts[z] = summary.element_counts.get(z, 0) + c
            summary.n_labelled_energy += int(batch.has_energy.sum())
            summary.n_labelled_forces += int(batch.has_forces.sum())
            summary.n_labelled_stress += int(batch.has_stress.sum())
            summary.periodic_configs += int(batch.pbc.any(axis=1).sum())
            for name in batch.config_type:
                summary.config_types[name] = summary.config_types.get(name, 0) + 1
            if batch.has_energy.any():
                e = batch.energy[batch.has_energy]
                epa = e / counts[batch.has_energy]
                e_lo, e_hi = min(e_lo, e.min()), max(e_hi, e.max())
                epa_lo, epa_hi = min(epa_lo, epa.min()), max(epa_hi, epa.max())
            atom_has_forces = np.repeat(batch.has_forces, counts)
            if atom_has_forces.any():
                f = batch.forces[atom_has_forces]
                f_lo, f_hi = min(f_lo, f.min()), max(f_hi, f.max())
                fmax = max(fmax, np.linalg.norm(f, axis=1).max())
    if summary.n_configs:
        summary.atoms_per_config = (int(n_min), int(n_max))
    finite = np.isfinite
    summary.energy_range = (e_lo, e_hi) if finite(e_lo) else (np.nan, np.nan)
    summary.energy_per_atom_range = (epa_lo, epa_hi) if finite(epa_lo) else (np.nan, np.nan)
    summary.force_component_range = (f_lo, f_hi) if finite(f_lo) else (np.nan, np.nan)
    summary.max_force_norm = fmax if finite(fmax) else np.nan
    return summary
