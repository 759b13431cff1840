"""Molecular dynamics that stops when the model stops knowing the answer.

Langevin MD of a copper cell with a vacancy, heated well above the temperatures in the
quick-start data. An UncertaintyMonitor watches the largest atomic force spread
σ_max = max_i ‖σ_F,i‖ (the ensemble's calibrated committee spread, eV/Å) after every step:

* above FLAG (eV/Å) a frame is kept — these are the structures to label and add to the data;
* above STOP the run ends, with the offending frame written out. Past that point the
  trajectory is the model's extrapolation, not physics.

    python examples/md_with_uncertainty_stop.py [MODEL] [TEMPERATURE_K]

MODEL: a model file (default runs/quickstart/model.h5) or models:/NAME/VERSION.
Writes runs/examples/md.traj (the trajectory), uncertainty.log (σ_max per step) and
flagged.extxyz (runs/ is git-ignored). Label flagged.extxyz with your reference method, `pesnet ingest` it together with your data,
and refit — or let `pesnet active-learn` do the loop (examples/active_learning.py).
"""

import sys
from pathlib import Path

import ase.io
import numpy as np
from ase import units
from ase.build import bulk
from ase.constraints import FixCom
from ase.io.trajectory import Trajectory
from ase.md.langevin import Langevin

from pesnet.calculator import PESNetCalculator
from pesnet.md import UncertaintyMonitor

try:
    from ase.md.velocitydistribution import thermalize_momenta
except ImportError:  # ASE < 3.29
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize_momenta

model = sys.argv[1] if len(sys.argv) > 1 else "runs/quickstart/model.h5"
temperature = float(sys.argv[2]) if len(sys.argv) > 2 else 1200.0
FLAG, STOP = 0.15, 0.5          # eV/Å; pick them against the test-set force error
out = Path("runs/examples")
out.mkdir(parents=True, exist_ok=True)

atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((3, 3, 3))
del atoms[0]                    # a vacancy
atoms.calc = (PESNetCalculator.from_mlflow(model) if model.startswith(("models:/", "runs:/"))
              else PESNetCalculator(model))
atoms.set_constraint(FixCom())  # ASE >= 3.28: Langevin(fixcm=False) + FixCom
thermalize_momenta(atoms, temperature_K=temperature, rng=np.random.default_rng(0))

dyn = Langevin(atoms, 2.0 * units.fs, temperature_K=temperature, friction=0.02, fixcm=False,
               rng=np.random.default_rng(1))
dyn.attach(Trajectory(out / "md.traj", "w", atoms), interval=10)
monitor = UncertaintyMonitor(atoms, flag_threshold=FLAG, stop_threshold=STOP,
                             keep_frames=True, logfile=str(out / "uncertainty.log"))
steps = monitor.run(dyn, 5000)   # stops early if σ_max > STOP

print(f"ran {steps} steps at {temperature:.0f} K; largest σ_max {monitor.max_score:.3f} eV/Å")
if monitor.stopped is not None:
    stop = monitor.stopped
    print(f"stopped: {stop}")
    ase.io.write(out / "stopped.extxyz", stop.atoms)
if monitor.flagged:
    # a few frames far apart in time are worth more than many neighbouring ones
    picked, last = [], -10**9
    for flag in monitor.flagged:
        if flag.step - last >= 50:
            picked.append(flag.atoms)
            last = flag.step
    ase.io.write(out / "flagged.extxyz", picked)
    print(f"{len(monitor.flagged)} frames above {FLAG} eV/Å; wrote {len(picked)} of them "
          f"(50 steps apart) to {out / 'flagged.extxyz'} for labelling")
else:
    print(f"no frame above {FLAG} eV/Å: the model is confident along this trajectory")
