"""Relax a structure with a pesnet model, and check where the model is unsure.

A Cu(111) slab with an adatom is relaxed with BFGS, then a bulk cell with its cell vectors
(FrechetCellFilter). Every answer of the calculator carries the ensemble's calibrated spread:
after the relaxation we print the atoms whose force spread is largest. A relaxed geometry is
only as good as the forces that led there — if the spread is comparable to your force
tolerance, add structures like this one to the training data (examples/active_learning.py).

    python examples/relax_with_uncertainty.py [MODEL]

MODEL is a model file (default: runs/quickstart/model.h5, made by
`pesnet run pipelines/quickstart.toml`) or a registered model such as models:/quickstart/1.
Writes runs/examples/relaxed.extxyz (runs/ is git-ignored) with per-atom force spreads
(array "forces_std").
"""

import sys
from pathlib import Path

import ase.io
import numpy as np
from ase.build import add_adsorbate, bulk, fcc111
from ase.constraints import FixAtoms
from ase.filters import FrechetCellFilter
from ase.optimize import BFGS
from threadpoolctl import threadpool_limits

from pesnet.calculator import PESNetCalculator
from pesnet.md import atomic_force_spread

model = sys.argv[1] if len(sys.argv) > 1 else "runs/quickstart/model.h5"


def calculator():
    """A new calculator per structure (each keeps its own neighbour list)."""
    if model.startswith(("models:/", "runs:/")):
        return PESNetCalculator.from_mlflow(model)
    return PESNetCalculator(model)


# 1. A slab with an adatom: bottom two layers fixed
slab = fcc111("Cu", size=(3, 3, 4), a=3.61, vacuum=8.0)
add_adsorbate(slab, "Cu", height=2.0, position="fcc")
slab.set_constraint(FixAtoms(mask=slab.positions[:, 2] < slab.positions[:, 2].min() + 2.5))
slab.calc = calculator()
BFGS(slab, logfile="-").run(fmax=0.02, steps=300)

energy = slab.get_potential_energy()
sigma_e = slab.calc.get_property("energy_std", slab)
spread = atomic_force_spread(slab.calc.get_property("forces_std", slab))   # ‖σ_F,i‖, eV/Å
print(f"\nslab: E = {energy:.4f} ± {sigma_e:.4f} eV, max |F| = "
      f"{np.linalg.norm(slab.get_forces(), axis=1).max():.4f} eV/Å")
print("atoms the ensemble is least sure about (force spread, eV/Å):")
for i in np.argsort(spread)[::-1][:3]:
    print(f"  atom {i:3d} at z = {slab.positions[i, 2]:6.2f} Å: {spread[i]:.3f}")
if spread.max() > 0.02:
    print("  -> the spread exceeds the force tolerance: treat this geometry with care")

# 2. A bulk cell: relax positions and cell together (the calculator gives the stress)
crystal = bulk("Cu", "fcc", a=3.70, cubic=True).repeat((2, 2, 2))
crystal.rattle(0.05, seed=1)
crystal.calc = calculator()
with threadpool_limits(1):  # the filter's 3×3 linear algebra is far faster on one BLAS thread
    BFGS(FrechetCellFilter(crystal), logfile="-").run(fmax=0.01, steps=300)
stress_std = crystal.calc.get_property("stress_std", crystal)
print(f"\nbulk: a = {crystal.cell.lengths()[0] / 2:.4f} Å, stress {crystal.get_stress()[:3]} "
      f"± {stress_std[:3]} eV/Å³")

slab.arrays["forces_std"] = slab.calc.get_property("forces_std", slab)
slab.info.pop("adsorbate_info", None)
out = Path("runs/examples")
out.mkdir(parents=True, exist_ok=True)
ase.io.write(out / "relaxed.extxyz", slab)
print(f"wrote {out / 'relaxed.extxyz'}")
