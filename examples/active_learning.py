"""Active learning: let the ensemble tell you which structures to compute next.

An ensemble fitted on copper at 300 and 600 K is asked to run MD at 1200 K. Where its members
disagree (large force spread) it is guessing; those frames are labelled with the reference
calculator (here EMT — swap in "gfn2-xtb" or your own registered calculator), added to the
data, and the ensemble is refitted. Two rounds, about two minutes on a laptop:

    python examples/active_learning.py

The same from the command line, with the [active_learning] table below in your spec:

    pesnet active-learn pipelines/NAME.toml

Everything lands in runs/cu-active/ (rounds in runs/cu-active/active-learning/round-NN/) and in
MLflow (`pesnet ui`): one "active-learning" run with a nested run per round.
"""

from pathlib import Path

import ase.io
from ase.build import bulk

from pesnet.data.calculators import make_calculator
from pesnet.data.recipes import run_recipe
from pesnet.pipeline.active_learning import run_active_learning
from pesnet.pipeline.spec import load_spec
from pesnet.potential.io import load_model

work = Path("runs/cu-active-example")
work.mkdir(parents=True, exist_ok=True)

# 1. Reference data you already have: here, EMT copper MD at 300/600 K (fit on these) and
#    a few 1200 K frames kept aside to measure the error where we want the model to work.
low, high = [], []
for atoms in run_recipe("cu-fcc", make_calculator("emt"), seed=0, scale=0.3):
    kind = atoms.info["config_type"]
    if kind in ("bulk_md_300K", "bulk_md_600K"):
        low.append(atoms)
    elif kind == "bulk_md_1200K":
        high.append(atoms)
    elif kind == "bulk_strained":
        break
ase.io.write(work / "cu_low_T.extxyz", low)
ase.io.write(work / "cu_1200K.extxyz", high)

# 2. A pipeline spec with an [active_learning] table (paths relative to the spec file).
spec = work / "cu-active.toml"
spec.write_text("""
name = "cu-active"

[dataset]
files = ["cu_low_T.extxyz"]

[descriptor]
cutoff = 5.0

[model]
hidden = [16, 16]

[ensemble]
members = 4

[train]
epochs = 150
batch_size = 8

[active_learning]
rounds = 2
calculator = "emt"              # any name of `pesnet generate --list`'s calculators
temperature_K = 1200            # or a list: [900, 1200]
md_steps = 300                  # per seed structure and temperature, 2 fs steps
quantile = 0.9                  # pick frames more uncertain than 90 % of the training set
min_spacing = 10                # MD steps between two picks of one trajectory
max_new = 20                    # configurations added per round at most
holdout = ["cu_1200K.extxyz"]   # scored after every round (never trained on)
""")

# 3. Fit, then the rounds.
result = run_active_learning(load_spec(spec), run_dir=work / "run")

print("\nround  picked  threshold  held-out 1200 K force MAE")
print(f"    0       -          -  {1e3 * result.initial_holdout['force_mae']:6.1f} meV/Å")
for r in result.rounds:
    mae = f"{1e3 * r.holdout['force_mae']:6.1f} meV/Å" if r.holdout else "(no retraining)"
    print(f"{r.round:5d}  {r.n_picked:6d}  {r.threshold:6.3f} eV/Å  {mae}")

# 4. Use the newest model: energies and forces with their uncertainty.
model = load_model(result.model_path)
atoms = bulk("Cu", "fcc", a=3.59, cubic=True).repeat(2)
atoms.rattle(0.1, seed=1)
p = model.predict(atoms)
print(f"\n{result.model_path}: E = {p.energy[0]:.3f} ± {p.energy_std[0]:.3f} eV, "
      f"largest force spread {p.forces_std.max():.3f} eV/Å")
