"""An ASE calculator wrapping PySCF's Kohn–Sham DFT, for labelling molecular reference data.

PySCF ships no maintained ASE calculator, so this is a small one: restricted (closed shell) or
unrestricted Kohn–Sham with a chosen functional and basis, density fitting for speed, and
analytic nuclear gradients. It returns

* ``energy`` (= ``free_energy``) in eV: the total electronic + nuclear-repulsion energy,
  converted from Hartree with ``ase.units.Hartree``;
* ``forces`` in eV/Å: ``F = −∂E/∂R``, converted from Hartree/Bohr with ``Hartree / Bohr``.

The forces are the exact derivative of the reported energy (checked against central finite
differences in ``tests/test_data_dft.py``): the gradient of the density-fitted energy is
density-fitted too (``pyscf.df.grad``), and the response of the integration grid to the atoms'
motion is included (``grid_response``), without which forces on a level-3 grid are off by
~1e-3 eV/Å.

Consecutive frames of an MD trajectory differ little, so the converged density matrix of the
previous call is the initial guess of the next (a third fewer SCF cycles); it is dropped when
the atoms' elements change. PySCF prints nothing (``verbose=0``). Threads: PySCF uses OpenMP;
set ``OMP_NUM_THREADS`` before starting Python to bound it.

Molecules only (no periodic boundary conditions).

Reference: Q. Sun et al., "Recent developments in the PySCF program package",
J. Chem. Phys. 153, 024109 (2020).
"""

from __future__ import annotations

import numpy as np
from ase.calculators.calculator import (
    CalculationFailed,
    Calculator,
    InputError,
    all_changes,
)
from ase.units import Bohr, Hartree


class PySCFCalculator(Calculator):
    """Kohn–Sham DFT energies (eV) and forces (eV/Å) from PySCF.

    Parameters (keyword arguments, also ``calc.parameters``): ``xc`` (any PySCF functional
    name), ``basis`` (any PySCF basis name), ``charge`` (e), ``spin`` (2S, the number of
    unpaired electrons; 0 gives restricted KS, otherwise unrestricted), ``density_fit``
    (bool), ``grid_level`` (PySCF's 0–9), ``conv_tol`` (Hartree), ``max_memory`` (MB).
    """

    implemented_properties = ["energy", "free_energy", "forces"]
    default_parameters = {
        "xc": "PBE",
        "basis": "def2-SVP",
        "charge": 0,
        "spin": 0,
        "density_fit": True,
        "grid_level": 3,
        "conv_tol": 1e-9,
        "max_memory": 2000,
    }

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._guess = None  # (atomic numbers, density matrix) of the last converged SCF

    def reset(self):
        super().reset()
        self._guess = None

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        if self.atoms.pbc.any():
            raise InputError("PySCFCalculator handles molecules only; got periodic atoms")
        mf = self._scf(self.atoms)
        numbers = tuple(self.atoms.numbers)
        dm0 = self._guess[1] if self._guess and self._guess[0] == numbers else None
        energy = mf.kernel(dm0=dm0)
        if not mf.converged:
            raise CalculationFailed(
                f"PySCF SCF did not converge ({self.parameters.xc}/{self.parameters.basis})")
        self._guess = (numbers, mf.make_rdm1())
        gradient = mf.nuc_grad_method()
        gradient.grid_response = True  # forces = −dE/dR exactly, not up to the grid's motion
        gradient.verbose = 0
        de = gradient.kernel()  # Hartree/Bohr, shape (n_atoms, 3)
        self.results["energy"] = float(energy) * Hartree
        self.results["free_energy"] = self.results["energy"]
        self.results["forces"] = -np.asarray(de) * (Hartree / Bohr)

    def _scf(self, atoms):
        """An unconverged PySCF mean-field object for ``atoms`` with this calculator's options."""
        from pyscf import dft, gto

        p = self.parameters
        mol = gto.M(
            atom=[(int(z), tuple(r)) for z, r in zip(atoms.numbers, atoms.positions)],
            unit="Angstrom",
            basis=p.basis,
            charge=p.charge,
            spin=p.spin,
            verbose=0,
            max_memory=p.max_memory,
        )
        mf = dft.RKS(mol) if p.spin == 0 else dft.UKS(mol)
        mf.xc = p.xc
        mf.grids.level = p.grid_level
        mf.conv_tol = p.conv_tol
        mf.verbose = 0
        return mf.density_fit() if p.density_fit else mf
