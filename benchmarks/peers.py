"""The peers of the DFT-ethanol table, trained from scratch on pesnet's shipped split, here.

Data: ``data/ethanol_pbe_def2svp.extxyz`` (PBE/def2-SVP, eV and eV/Å) split as in
``benchmarks/accuracy.py --dft``: validation = ``pipelines/ethanol_dft_validation.txt`` (50
frames of 500 K MD), test = the first 200 indices of ``pipelines/ethanol_dft_test.txt`` (500 K),
out-of-distribution (OOD) = its next 200 (1,000 K MD), training = the other 950 frames.

Peers (benchmark-only dependencies, never imported by pesnet; a peer whose package does not
import is skipped with the reason printed):

* TorchANI: ANI-1x AEV (``AEVComputer.like_1x``: radial cutoff 5.2 Å, 16 shifts; angular
  3.5 Å, 4 shifts × 8 sections) for H, C, O; an ensemble of 5 ANI-1x atomic-network sets
  (``ANINetworks.like_1x``, CELU) trained from scratch, each on its own shuffling, with the
  loss of TorchANI's force-training example, ``mean(ΔE² / √N) + 0.1 · mean(Σ_i |ΔF_i|² / N)``
  (both terms in eV², so the weight means what it means in Hartree), AdamW, learning rate
  halved on a validation plateau, the best validation epoch kept, early stop or the wall-time
  cap (default 1,500 s for the five). Energies and forces are the ensemble means; σ_i
  the committee spread (ddof 1) of atom i's force, ``(Σ_x σ_ix²)^½``.
* MACE (``mace_run_train``, its own loop): one model, 32×0e + 32×1o hidden irreps (max_L 1),
  r_max 5 Å, 2 interactions, correlation 3, batch 5, lr 0.01 AMSGrad, EMA 0.99, MACE's default
  loss weights (energy 1, forces 100; no stage two, whose start a time cap cannot place),
  float64, E0s by least squares on the training set, validation every epoch. Stopped by the
  cap (SIGTERM), then finished by a second ``mace_run_train --restart_latest`` that trains no
  epoch, loads the best checkpoint (EMA weights) and saves the model.

Figures (meV/atom for energies, meV/Å per Cartesian force component): energy and force MAE on
the 200 test frames (and the mean signed energy error: a constant offset shows there), force MAE on the 200 OOD frames; for TorchANI also Spearman(|ΔF_i|, σ_i)
over atoms, the fraction of force components with |ΔF| ≤ s·σ (s the one factor that puts
68.3 % of the validation components inside; the unscaled fraction beside it) and the mean
per-atom spread σ_i on the OOD frames over that on the test frames. Training seconds (wall
time of the training loop; for MACE of the capped run, data loading included) and the median
time to predict one molecule (energy + forces, + spread for TorchANI) over 100 calls, each on
a slightly moved structure. Every torch computation uses ``--threads`` intra-op threads. The
load average is printed at the start and the end: the machine may be shared.

    python benchmarks/peers.py [--quick] [--only torchani|mace] [--threads 1]
        [--time-cap-s S] [--mace-dir DIR]

``--time-cap-s`` caps each peer's training (default 1,500 s TorchANI, 1,200 s MACE; ``--quick``
trains on 100 frames, scores 40 + 40, caps at 60 s and times 20 calls). The peers need torch,
``torchani`` and ``mace-torch`` (e.g. torch 2.13.0 CPU, torchani 2.9.0, mace-torch 0.3.16) in
an environment of their own; pesnet is found from this checkout (only its split and metric
helpers are used), so ``python`` here is that environment's.

Ends with one JSON line: peers_{torchani,mace}_{force_mae, energy_mae, ood_force_mae,
train_s, predict_ms, energy_bias}, peers_torchani_{spearman, coverage, coverage_raw, sigma_ratio},
load_start, load_end (1-minute load averages).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SYMBOLS = ("H", "C", "O")


# --- the split ---------------------------------------------------------------------------

def load_split(quick=False):
    """Frames of the shipped split: dict of lists of ASE Atoms (train, valid, test, ood)."""
    from ase.io import read

    from pesnet.data.split import fixed_split, read_index_file

    source = ROOT / "data" / "ethanol_pbe_def2svp.extxyz"
    frames = read(source, ":", format="extxyz")
    test = read_index_file(ROOT / "pipelines" / "ethanol_dft_test.txt")
    validation = read_index_file(ROOT / "pipelines" / "ethanol_dft_validation.txt")
    split = fixed_split(len(frames), validation, test)
    parts = {"train": split.train, "valid": validation, "test": test[:200], "ood": test[200:]}
    if quick:
        parts = {"train": parts["train"][:100], "valid": parts["valid"][:20],
                 "test": parts["test"][:40], "ood": parts["ood"][:40]}
    return {name: [frames[int(k)] for k in idx] for name, idx in parts.items()}


def labels(frames):
    """Reference energies (n,) eV and forces (n, n_atoms, 3) eV/Å."""
    energies = np.array([a.get_potential_energy() for a in frames])
    forces = np.stack([a.get_forces() for a in frames])
    return energies, forces


def scores(frames, energy, forces, forces_std=None):
    """pesnet's metrics of predictions on ``frames`` (energy (n,), forces (n, N, 3) eV/Å)."""
    from pesnet.metrics import energy_force_metrics

    e_ref, f_ref = labels(frames)
    n_atoms = np.array([len(a) for a in frames])
    std = None if forces_std is None else forces_std.reshape(-1, 3)
    return energy_force_metrics(energy, e_ref, n_atoms, forces.reshape(-1, 3),
                                f_ref.reshape(-1, 3), forces_std=std)


def energy_bias(frames, energy):
    """Mean signed energy error per atom, meV/atom: the part of the energy MAE that one
    constant (e.g. an unconverged per-element offset) would remove."""
    e_ref, _ = labels(frames)
    return 1e3 * float(np.mean((np.asarray(energy) - e_ref) / [len(a) for a in frames]))


def median_ms(predict, atoms, calls):
    """Median wall ms of ``predict(atoms)`` over ``calls`` calls, each on a moved structure."""
    atoms = atoms.copy()
    predict(atoms)  # warm-up
    times = []
    for k in range(calls):
        atoms.positions[0, 0] += 1e-4 * (-1) ** k
        t0 = time.perf_counter()
        predict(atoms)
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


# --- TorchANI ----------------------------------------------------------------------------

def ani_tensors(frames):
    """(element indices (n, N) long, coordinates (n, N, 3), energies (n,) float64, forces)."""
    import torch

    index = {s: k for k, s in enumerate(SYMBOLS)}
    species = torch.tensor([[index[s] for s in a.get_chemical_symbols()] for a in frames])
    coords = torch.tensor(np.stack([a.positions for a in frames]), dtype=torch.float32)
    energies, forces = labels(frames)
    return species, coords, torch.tensor(energies), torch.tensor(forces, dtype=torch.float32)


def self_energies(species, energies):
    """Per-element energies (3,) eV by least squares on the training set (ANI's shifter)."""
    import torch

    counts = torch.stack([(species == k).sum(1) for k in range(len(SYMBOLS))], 1).double()
    return torch.linalg.lstsq(counts, energies.unsqueeze(1)).solution.squeeze(1)


def ani_energy_forces(aev, nets, species, coords, shift, create_graph=False):
    """Energies (B,) eV (float64) and forces (B, N, 3) eV/Å of one member ``nets``."""
    import torch

    coords = coords.detach().requires_grad_(True)
    energies = nets(species, aev(species, coords))
    forces = -torch.autograd.grad(energies.sum(), coords, create_graph=create_graph)[0]
    return energies.double() + shift[species].sum(1), forces


def ani_loss(aev, nets, batch, shift, force_weight, create_graph=True):
    """TorchANI's force-training loss: mean(ΔE²/√N) + w · mean(Σ|ΔF|²/N), eV²."""
    species, coords, energies, forces = batch
    e, f = ani_energy_forces(aev, nets, species, coords, shift, create_graph)
    n = float(species.shape[1])
    e_loss = ((e - energies) ** 2 / n ** 0.5).mean()
    f_loss = ((f - forces) ** 2).sum((1, 2)).mean() / n
    return e_loss.float() + force_weight * f_loss


def ani_validate(aev, nets, valid, shift, force_weight):
    loss = ani_loss(aev, nets, valid, shift, force_weight, create_graph=False)
    return float(loss.detach())


class Member:
    """One ANI-1x network set with its optimiser, scheduler and best validation state."""

    def __init__(self, in_dim, seed, lr):
        import torch
        from torchani.nn import ANINetworks

        torch.manual_seed(seed)
        self.nets = ANINetworks.like_1x(symbols=SYMBOLS, in_dim=in_dim)
        self.optimizer = torch.optim.AdamW(self.nets.parameters(), lr=lr, weight_decay=1e-5)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, factor=0.5, patience=25)
        self.rng = np.random.default_rng(seed)
        self.best, self.best_state, self.stale, self.epochs = np.inf, None, 0, 0

    def epoch(self, aev, train, shift, force_weight, batch_size):
        n = train[0].shape[0]
        for idx in np.array_split(self.rng.permutation(n), max(1, n // batch_size)):
            loss = ani_loss(aev, self.nets, [t[idx] for t in train], shift, force_weight)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
        self.epochs += 1

    def validate(self, aev, valid, shift, force_weight, patience):
        """Keep the best state; True while the member should go on training."""
        import copy

        loss = ani_validate(aev, self.nets, valid, shift, force_weight)
        self.scheduler.step(loss)
        if loss < self.best:
            self.best, self.stale = loss, 0
            self.best_state = copy.deepcopy(self.nets.state_dict())
        else:
            self.stale += 1
        return self.stale < patience and self.optimizer.param_groups[0]["lr"] > 1e-6


def ani_train(data, cap_s, n_members=5, force_weight=0.1, batch_size=32, patience=100):
    """Train the ensemble in rounds (one epoch of each active member) until every member has
    stopped early or a round ends past ``cap_s`` seconds; (aev, members, shift, seconds)."""
    from torchani.aev import AEVComputer

    aev = AEVComputer.like_1x(num_species=len(SYMBOLS))
    train, valid = ani_tensors(data["train"]), ani_tensors(data["valid"])
    shift = self_energies(train[0], train[2])
    members = [Member(aev.out_dim, seed, 1e-3) for seed in range(n_members)]
    active = set(range(n_members))
    t0 = time.perf_counter()
    while active and time.perf_counter() - t0 < cap_s:
        for k in sorted(active):
            members[k].epoch(aev, train, shift, force_weight, batch_size)
            if not members[k].validate(aev, valid, shift, force_weight, patience):
                active.discard(k)
    seconds = time.perf_counter() - t0
    for m in members:
        m.nets.load_state_dict(m.best_state)
    return aev, members, shift, seconds


def ani_predict(aev, members, shift, frames, batch=50):
    """Per-member energies (M, n) eV and forces (M, n, N, 3) eV/Å on ``frames``."""
    import torch

    species, coords, _, _ = ani_tensors(frames)
    es, fs = [], []
    for m in members:
        parts = [ani_energy_forces(aev, m.nets, species[i:i + batch], coords[i:i + batch],
                                   shift) for i in range(0, len(frames), batch)]
        es.append(torch.cat([p[0] for p in parts]).detach().numpy())
        fs.append(torch.cat([p[1] for p in parts]).detach().numpy().astype(float))
    return np.stack(es), np.stack(fs)


def ani_one(aev, members, shift):
    """``predict(atoms)`` → energy eV, forces (N, 3) eV/Å and their spreads σ_F (N, 3): the
    ensemble's prediction for one molecule, as an MD step would ask for it."""
    import torch
    from torchani.nn import Ensemble

    ensemble = Ensemble([m.nets for m in members])
    index = {s: k for k, s in enumerate(SYMBOLS)}

    def predict(atoms):
        species = torch.tensor([[index[s] for s in atoms.get_chemical_symbols()]])
        coords = torch.tensor(atoms.positions[None], dtype=torch.float32, requires_grad=True)
        energies = ensemble(species, aev(species, coords), ensemble_values=True)
        forces = torch.stack([-torch.autograd.grad(e.sum(), coords, retain_graph=True)[0][0]
                              for e in energies])
        energy = float(energies.detach().double().mean() + shift[species].sum())
        return energy, forces.mean(0).numpy(), forces.std(0).numpy()
    return predict


def spread_scale(errors, std, target=0.683):
    """The factor s with ``target`` of |errors| ≤ s·std (a quantile of |e|/σ)."""
    return float(np.quantile(np.abs(errors) / np.maximum(std, 1e-12), target))


def run_torchani(data, cap_s, calls):
    """Train, score and time the TorchANI ensemble; dict of figures (meV, meV/Å, s, ms)."""
    from pesnet.metrics import coverage

    aev, members, shift, seconds = ani_train(data, cap_s)
    out = {"train_s": seconds, "epochs": sum(m.epochs for m in members)}
    pred = {name: ani_predict(aev, members, shift, data[name])
            for name in ("valid", "test", "ood")}
    mean = {k: (e.mean(0), f.mean(0), f.std(0, ddof=1)) for k, (e, f) in pred.items()}
    _, f_valid, s_valid = mean["valid"]
    scale = spread_scale(f_valid - labels(data["valid"])[1], s_valid)
    test = scores(data["test"], mean["test"][0], mean["test"][1], scale * mean["test"][2])
    ood = scores(data["ood"], *mean["ood"][:2])
    f_err = mean["test"][1] - labels(data["test"])[1]
    sigma_atom = {k: np.linalg.norm(mean[k][2], axis=-1).mean() for k in ("test", "ood")}
    out.update(
        energy_mae=1e3 * test["energy_mae_per_atom"], force_mae=1e3 * test["force_mae"],
        ood_force_mae=1e3 * ood["force_mae"], spearman=test["force_spearman"],
        energy_bias=energy_bias(data["test"], mean["test"][0]),
        coverage=test["force_coverage_1sigma"], coverage_raw=coverage(f_err, mean["test"][2]),
        scale=scale, sigma_ratio=sigma_atom["ood"] / sigma_atom["test"],
        sigma_ratio_component=mean["ood"][2].mean() / mean["test"][2].mean(),
        predict_ms=median_ms(ani_one(aev, members, shift), data["test"][0], calls))
    return out


# --- MACE --------------------------------------------------------------------------------

#: mace_run_train settings of the one small model (see the module doc).
MACE_ARGS = [
    "--model", "MACE", "--hidden_irreps", "32x0e+32x1o", "--num_channels", "32",
    "--max_L", "1", "--r_max", "5.0", "--num_interactions", "2", "--correlation", "3",
    "--batch_size", "5", "--valid_batch_size", "10", "--lr", "0.01", "--amsgrad", "--ema",
    "--ema_decay", "0.99", "--energy_weight", "1", "--forces_weight", "100",
    "--E0s", "average", "--default_dtype", "float64", "--device", "cpu", "--seed", "0",
    "--patience", "50", "--keep_checkpoints", "--save_cpu", "--plot", "False",
    "--error_table", "PerAtomMAE", "--energy_key", "REF_energy", "--forces_key", "REF_forces",
]


def mace_files(data, work):
    """train.xyz and valid.xyz with the labels under MACE's keys (REF_energy, REF_forces)."""
    from ase import Atoms
    from ase.io import write

    for name in ("train", "valid"):
        frames = []
        for atoms in data[name]:
            bare = Atoms(atoms.numbers, atoms.positions)
            bare.info["REF_energy"] = atoms.get_potential_energy()
            bare.arrays["REF_forces"] = atoms.get_forces()
            frames.append(bare)
        write(work / f"{name}.xyz", frames, format="extxyz")


def mace_run(work, threads, extra, timeout=None):
    """Run mace_run_train in ``work`` (log appended to train.log); (seconds, capped)."""
    command = [sys.executable, "-m", "mace.cli.run_train", "--name", "peer",
               "--work_dir", str(work), "--train_file", str(work / "train.xyz"),
               "--valid_file", str(work / "valid.xyz"), *MACE_ARGS, *extra]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    t0 = time.perf_counter()
    with open(work / "train.log", "a") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                cwd=work, start_new_session=True)
        try:
            proc.wait(timeout=timeout)
            capped = False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
            capped = True
    if not capped and proc.returncode != 0:
        tail = (work / "train.log").read_text().splitlines()[-15:]
        raise RuntimeError("mace_run_train failed:\n" + "\n".join(tail))
    return time.perf_counter() - t0, capped


def mace_finish(work, threads):
    """After a capped run: drop a checkpoint cut short by the kill, then let mace_run_train
    --restart_latest (no epoch left to train) load the best checkpoint and save the model."""
    import torch

    def epoch(path):
        return int(path.stem.rsplit("epoch-", 1)[1])

    saved = sorted((work / "checkpoints").glob("peer_run-0_epoch-*.pt"), key=epoch)
    while saved:
        try:
            torch.load(saved[-1], map_location="cpu", weights_only=False)
            break
        except Exception:  # written when the run was killed
            saved.pop().unlink()
    if not saved:
        raise RuntimeError("the time cap ended MACE's training before its first checkpoint")
    mace_run(work, threads, ["--restart_latest", "--max_num_epochs", str(epoch(saved[-1]))])
    return epoch(saved[-1])


def mace_epochs(log):
    """Epochs mace_run_train finished (validated), from its log."""
    import re

    done = [int(k) for k in re.findall(r"Epoch (\d+):", log.read_text())]
    return max(done) + 1 if done else 0


def mace_predictor(model_path):
    """``predict(atoms)`` → (energy eV, forces (N, 3) eV/Å) with MACE's ASE calculator."""
    from mace.calculators import MACECalculator

    calc = MACECalculator(model_paths=str(model_path), device="cpu", default_dtype="float64")

    def predict(atoms):
        atoms.calc = calc
        return atoms.get_potential_energy(), atoms.get_forces()
    return predict


def run_mace(data, cap_s, calls, threads, keep=None):
    """Train (capped), score and time the MACE model; dict of figures. ``keep``: a folder
    for MACE's files and log instead of a temporary one."""
    from ase import Atoms

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(keep or tmp)
        work.mkdir(parents=True, exist_ok=True)
        mace_files(data, work)
        seconds, capped = mace_run(work, threads, ["--max_num_epochs", "100000"], cap_s)
        t0 = time.perf_counter()
        best = mace_finish(work, threads) if capped else None
        out = {"train_s": seconds, "finish_s": time.perf_counter() - t0, "best_epoch": best,
               "epochs": mace_epochs(work / "train.log")}
        predict = mace_predictor(work / "peer.model")
        for name in ("test", "ood"):
            pairs = [predict(Atoms(a.numbers, a.positions)) for a in data[name]]
            energies = np.array([p[0] for p in pairs])
            out[name] = scores(data[name], energies, np.stack([p[1] for p in pairs]))
            out[f"{name}_energy_bias"] = energy_bias(data[name], energies)
        out["predict_ms"] = median_ms(predict, Atoms(data["test"][0].numbers,
                                                     data["test"][0].positions), calls)
    test, ood = out.pop("test"), out.pop("ood")
    out.update(energy_mae=1e3 * test["energy_mae_per_atom"], force_mae=1e3 * test["force_mae"],
               ood_force_mae=1e3 * ood["force_mae"], energy_bias=out.pop("test_energy_bias"))
    return out


# --- the report --------------------------------------------------------------------------

ROWS = [  # (label, ((key, format), ...)); several figures are joined by " / "
    ("energy MAE, test (meV/atom)", (("energy_mae", "{:.3f}"),)),
    ("  mean signed energy error, test (meV/atom)", (("energy_bias", "{:+.3f}"),)),
    ("force MAE, test (meV/Å)", (("force_mae", "{:.1f}"),)),
    ("force MAE, 1,000 K frames (meV/Å)", (("ood_force_mae", "{:.1f}"),)),
    ("Spearman(|ΔF_i|, σ_i), test atoms", (("spearman", "{:.3f}"),)),
    ("force components within s·σ, test", (("coverage", "{:.1%}"),)),
    ("  within raw σ / s (fitted on validation)", (("coverage_raw", "{:.1%}"),
                                                  ("scale", "{:.2f}"))),
    ("σ(1,000 K)/σ(test): per atom / per component", (("sigma_ratio", "{:.2f}"),
                                                     ("sigma_ratio_component", "{:.2f}"))),
    ("training (s)", (("train_s", "{:.0f}"),)),
    ("  MACE's finishing run after the cap (s)", (("finish_s", "{:.0f}"),)),
    ("  epochs (all members) / best epoch", (("epochs", "{}"), ("best_epoch", "{}"))),
    ("predict one molecule (ms, median)", (("predict_ms", "{:.2f}"),)),
]


def cell(figures, spec):
    """The figures of one table cell, "—" where a peer has none."""
    return " / ".join(fmt.format(figures[key]) if figures and figures.get(key) is not None
                      else "—" for key, fmt in spec)


def print_table(results, skipped):
    names = ("torchani", "mace")
    rows = [("quantity", "TorchANI (ANI-1x AEV, 5 nets)", "MACE (32x0e+32x1o, L=1)")]
    rows += [(label, *(cell(results.get(n), spec) for n in names)) for label, spec in ROWS]
    widths = [max(len(r[k]) for r in rows) for k in range(3)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    for name, reason in skipped.items():
        print(f"{name}: skipped ({reason})")


def run_peer(name, data, args):
    """Import ``name``'s package and run it; (figures, None) or (None, why it was skipped)."""
    module = {"torchani": "torchani", "mace": "mace"}[name]
    try:
        __import__(module)
    except Exception as error:  # not installed, or broken against this torch
        return None, f"import {module} failed: {type(error).__name__}: {error}"
    cap = args.time_cap_s or (60.0 if args.quick else DEFAULT_CAP_S[name])
    calls = 20 if args.quick else 100
    print(f"{name}: training (cap {cap:.0f} s, {args.threads} thread(s)) ...", flush=True)
    try:
        if name == "torchani":
            return run_torchani(data, cap, calls), None
        return run_mace(data, cap, calls, args.threads, args.mace_dir), None
    except Exception as error:
        traceback.print_exc()
        return None, f"failed: {type(error).__name__}: {error}"


#: Wall-time caps of the full run, s.
DEFAULT_CAP_S = {"torchani": 1500.0, "mace": 1200.0}
JSON_KEYS = ("force_mae", "energy_mae", "ood_force_mae", "train_s", "predict_ms",
             "energy_bias")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="100 training frames, 60 s caps, 20 timed calls: a smoke run")
    parser.add_argument("--only", choices=("torchani", "mace"), default=None)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--time-cap-s", type=float, default=None,
                        help="wall-time cap of each peer's training (default: TorchANI "
                        "1,500 s, MACE 1,200 s; --quick 60 s)")
    parser.add_argument("--mace-dir", type=Path, default=None,
                        help="keep MACE's files and train.log here (default: a temporary folder)")
    args = parser.parse_args()
    os.environ.setdefault("TORCHANI_NO_WARN_EXTENSIONS", "1")  # no CUDA extensions on CPU
    sys.path.insert(0, str(ROOT))  # pesnet's split and metrics, pesnet need not be installed
    load_start = os.getloadavg()
    print(f"load average at start: {load_start[0]:.2f} {load_start[1]:.2f} "
          f"{load_start[2]:.2f} on {os.cpu_count()} cores", flush=True)
    try:
        import torch

        torch.set_num_threads(args.threads)
    except Exception:
        pass  # without torch both peers fail to import and are skipped below
    data = load_split(args.quick)
    results, skipped = {}, {}
    for name in [args.only] if args.only else ["torchani", "mace"]:
        results[name], reason = run_peer(name, data, args)
        if reason:
            skipped[name] = reason
            print(f"{name}: skipped ({reason})", flush=True)
    load_end = os.getloadavg()
    print(f"load average at end: {load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f}")
    print_table(results, skipped)
    figures = {f"peers_{n}_{k}": f[k] for n, f in results.items() if f for k in JSON_KEYS}
    figures.update({f"peers_torchani_{k}": results["torchani"][k] for k in
                    ("spearman", "coverage", "coverage_raw", "sigma_ratio")}
                   if results.get("torchani") else {})
    figures.update(load_start=load_start[0], load_end=load_end[0])
    print(json.dumps({k: round(float(v), 4) for k, v in figures.items()}))


if __name__ == "__main__":
    main()
