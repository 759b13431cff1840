"""``pesnet properties MODEL``: materials properties of the model's element, every member's
value as mean ± spread, with ``--reference NAME`` a registered calculator's value and the error
beside it.

Lattice constant and bulk modulus (EOS), C11, C12, C44, the vacancy formation energy, (100)
and (111) surface energies and phonon frequencies at special points, for a unary fcc or bcc
crystal (methods and units: :mod:`pesnet.properties`). The spread shown is calibrated with the
model's calibration factors (raw beside it). The model file does not say whether it was
trained on periodic structures, so that is not checked: a model trained on molecules gives
numbers, not meaningful ones.
"""

from __future__ import annotations

import json
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "properties", help="lattice constant, elastic constants, defects, phonons with spread",
        description="Compute crystal properties of a unary model with every ensemble member: "
        "a0, B, C11, C12, C44, vacancy and surface energies, phonon frequencies; mean ± "
        "spread, and the error of the mean against a reference calculator.")
    parser.add_argument("model", type=Path, help="model file")
    parser.add_argument("--reference", metavar="NAME",
                        help="registered reference calculator (e.g. emt) to compare with")
    parser.add_argument("--element", metavar="SYMBOL",
                        help="the element of a model of several (default: its only one)")
    parser.add_argument("--only", metavar="NAMES",
                        help="comma-separated properties (default all: a0,B,C11,C12,C44,"
                        "E_vac,gamma_100,gamma_111,nu_X_TA,nu_X_LA,nu_L_TA,nu_L_LA for fcc)")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    parser.set_defaults(func=run)


def run(args) -> int:
    from pesnet.potential.io import load_model
    from pesnet.properties import (
        ensemble_properties,
        format_table,
        results_json,
        select_names,
        unary_crystal,
    )

    model = load_model(args.model)
    crystal = unary_crystal(model, args.element)
    names = select_names(args.only, crystal.structure)   # bad names fail before any work
    reference = None
    if args.reference is not None:
        from pesnet.data.calculators import make_calculator

        reference = make_calculator(args.reference)
    results = ensemble_properties(model, names, reference, crystal.symbol,
                                  progress=not args.json)
    if args.json:
        print(json.dumps({"model": str(args.model), "element": crystal.symbol,
                          "structure": crystal.structure, "members": model.n_members,
                          "calibration": model.calibration, "reference": args.reference,
                          "properties": results_json(results)}, indent=2))
        return 0
    against = f", reference {args.reference}" if reference is not None else ""
    print(f"{crystal.symbol} {crystal.structure}, {model.n_members} members{against} "
          f"(σ calibrated: energy × {model.calibration['energy']:.3g}, forces × "
          f"{model.calibration['forces']:.3g})")
    print(format_table(results))
    return 0
