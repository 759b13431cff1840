"""``pesnet ingest INPUT... -o dataset.h5``: ASE-readable files → a validated pesnet dataset."""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "ingest",
        help="read configurations from ASE-readable files into a dataset",
        description="Read labelled configurations from any format ASE reads (extxyz, traj, "
        "ASE db, VASP OUTCAR and vasprun.xml, Quantum ESPRESSO output, ...), every frame "
        "unless --index selects fewer, validate them and write one pesnet dataset (HDF5). "
        "On any error nothing is written.",
    )
    parser.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="input files")
    parser.add_argument("-o", "--output", type=Path, required=True, help="dataset file to write")
    parser.add_argument("--format", dest="fmt", help="force an ASE format name for all inputs")
    parser.add_argument("--index", default=":",
                        help="frames to read from each input, ASE syntax (default ':', every "
                        "frame: every ionic step of an OUTCAR or vasprun.xml)")
    parser.add_argument("--energy-key", help="info key holding the energy (eV)")
    parser.add_argument("--forces-key", help="arrays key holding the forces (eV/Å)")
    parser.add_argument("--stress-key", help="info key holding the stress (eV/Å³)")
    parser.add_argument("--group-key", default="config_type", metavar="KEY",
                        help="info key whose value is each configuration's group, for "
                        "per-group metrics (default config_type; e.g. set)")
    parser.add_argument("--allow-unlabelled", action="store_true",
                        help="accept configurations without energy or forces")
    parser.add_argument("--quiet", action="store_true", help="print no summary or progress")
    parser.set_defaults(func=run)


def run(args) -> int:
    from pesnet.data.ingest import LabelKeys, ingest
    from pesnet.data.summary import summarize
    from pesnet.fileio import check_output_path

    check_output_path(args.output)
    keys = LabelKeys(energy=args.energy_key, forces=args.forces_key, stress=args.stress_key)
    ingest(args.inputs, args.output, fmt=args.fmt, index=args.index, keys=keys,
           allow_unlabelled=args.allow_unlabelled, progress=not args.quiet,
           group_key=args.group_key)
    if not args.quiet:
        print(summarize(args.output).format())
    return 0
