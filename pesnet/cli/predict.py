"""``pesnet predict model.h5 structures -o out.extxyz``: energies, forces and uncertainties.

The output is the input with ``pesnet_*`` keys added: the input's own labels (energy, forces,
stress) are kept, and where they exist each structure also gets its errors
(``pesnet_energy_error`` eV and ``pesnet_energy_error_per_atom`` eV/atom, prediction minus
reference; per atom ``pesnet_force_error`` = |ΔF_i| eV/Å).
"""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="predict structures with uncertainty",
        description="Predict every structure of an ASE-readable file. The output (extxyz) "
        "keeps the input's labels and carries info keys pesnet_energy, pesnet_energy_std (eV) "
        "and, for periodic cells, pesnet_stress, pesnet_stress_std (eV/Å³, Voigt), and arrays "
        "pesnet_forces, pesnet_forces_std (eV/Å), pesnet_energies, pesnet_energies_std "
        "(eV/atom). Where the input has reference labels: pesnet_energy_error (eV), "
        "pesnet_energy_error_per_atom (eV/atom) and the per-atom pesnet_force_error |ΔF_i| "
        "(eV/Å).",
    )
    parser.add_argument("model", type=Path, help="model file")
    parser.add_argument("structures", type=Path, help="ASE-readable file")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output (.extxyz)")
    parser.add_argument("--format", dest="fmt", help="force the input's ASE format")
    parser.add_argument("--index", default=":", help="frames to read (ASE syntax)")
    parser.set_defaults(func=run)


def run(args) -> int:
    import ase.io
    import numpy as np

    from pesnet.data.ingest import (
        check_readable,
        configuration_label,
        iter_configurations,
        resolve_format,
    )
    from pesnet.data.validate import structure_problem
    from pesnet.errors import ConfigurationError
    from pesnet.fileio import atomic_output, check_output_path
    from pesnet.potential.io import load_model

    check_output_path(args.output)
    model = load_model(args.model)
    check_readable(args.structures)
    fmt = resolve_format(args.structures, args.fmt)
    frames = []
    for index, atoms in iter_configurations(args.structures, fmt, args.index):
        problem = structure_problem(atoms)
        if problem is not None:
            raise ConfigurationError(args.structures, configuration_label(index, args.index),
                                     problem)
        frames.append(atoms)
    out = [_annotated(atoms, model.predict(atoms, stress=bool(np.any(atoms.pbc))))
           for atoms in frames]
    with atomic_output(args.output) as tmp:
        ase.io.write(tmp, out, format="extxyz")
    print(f"predicted {len(out)} structures into {args.output}")
    return 0


def _annotated(atoms, p):
    """A copy of ``atoms`` keeping its reference labels, with prediction ``p`` (one
    structure's :class:`~pesnet.potential.model.PotentialPrediction`) and its errors as pesnet_* keys."""
    import numpy as np
    from ase.calculators.singlepoint import SinglePointCalculator

    result = atoms.copy()
    reference = dict(getattr(atoms.calc, "results", None) or {})
    if reference:
        result.calc = SinglePointCalculator(result, **reference)
    result.info["pesnet_energy"] = float(p.energy[0])
    result.info["pesnet_energy_std"] = float(p.energy_std[0])
    if p.stress is not None and np.isfinite(p.stress[0]).all():
        result.info["pesnet_stress"] = p.stress[0]
        result.info["pesnet_stress_std"] = p.stress_std[0]
    result.arrays["pesnet_forces"] = p.forces
    result.arrays["pesnet_forces_std"] = p.forces_std
    result.arrays["pesnet_energies"] = p.energies
    result.arrays["pesnet_energies_std"] = p.energies_std
    if reference.get("energy") is not None:
        error = float(p.energy[0]) - float(reference["energy"])
        result.info["pesnet_energy_error"] = error
        result.info["pesnet_energy_error_per_atom"] = error / len(atoms)
    forces = reference.get("forces")
    if forces is not None and np.shape(forces) == p.forces.shape:
        result.arrays["pesnet_force_error"] = np.linalg.norm(p.forces - forces, axis=1)
    return result
