"""``pesnet predict model.h5 structures -o out.extxyz``: energies, forces and uncertainties."""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="predict structures with uncertainty",
        description="Predict every structure of an ASE-readable file. The output (extxyz) "
        "carries info keys pesnet_energy, pesnet_energy_std (eV) and, for periodic cells, "
        "pesnet_stress (eV/Å³, Voigt), and arrays pesnet_forces, pesnet_forces_std (eV/Å), "
        "pesnet_energies, pesnet_energies_std (eV/atom).",
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

    from pesnet.data.ingest import check_readable, iter_configurations, resolve_format
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
            raise ConfigurationError(args.structures, index, problem)
        frames.append(atoms)
    out = []
    for atoms in frames:
        p = model.predict(atoms, stress=bool(np.any(atoms.pbc)))
        result = atoms.copy()
        result.calc = None
        result.info["pesnet_energy"] = float(p.energy[0])
        result.info["pesnet_energy_std"] = float(p.energy_std[0])
        if p.stress is not None and np.isfinite(p.stress[0]).all():
            result.info["pesnet_stress"] = p.stress[0]
        result.arrays["pesnet_forces"] = p.forces
        result.arrays["pesnet_forces_std"] = p.forces_std
        result.arrays["pesnet_energies"] = p.energies
        result.arrays["pesnet_energies_std"] = p.energies_std
        out.append(result)
    with atomic_output(args.output) as tmp:
        ase.io.write(tmp, out, format="extxyz")
    print(f"predicted {len(out)} structures into {args.output}")
    return 0
