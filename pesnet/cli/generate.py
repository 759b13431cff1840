"""``pesnet generate RECIPE -o FILE``: labelled reference data from a registered calculator."""

from __future__ import annotations

from pathlib import Path

from pesnet.errors import InputError


def register(subparsers) -> None:
    from pesnet.data.recipes import RECIPES

    parser = subparsers.add_parser(
        "generate",
        help="make labelled reference data with an ASE calculator",
        description="Run a seeded reference-data recipe and write the labelled configurations "
        "(any format ASE writes with labels, e.g. .extxyz or .traj).",
    )
    parser.add_argument("recipe", nargs="?", choices=sorted(RECIPES), help="recipe name")
    parser.add_argument("-o", "--output", type=Path, help="output file (.extxyz, .traj, ...)")
    parser.add_argument("--calculator", help="registered calculator name (default: the recipe's)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply every sample count by this (default 1)")
    parser.add_argument("--list", action="store_true", help="list recipes and calculators")
    parser.set_defaults(func=run)


def run(args) -> int:
    import ase.io
    from ase.io.formats import UnknownFileTypeError, filetype, ioformats

    from pesnet.data.calculators import available_calculators, make_calculator
    from pesnet.data.recipes import RECIPES, run_recipe
    from pesnet.fileio import atomic_output, check_output_path

    if args.list:
        print("recipes:")
        for recipe in RECIPES.values():
            print(f"  {recipe.name:10s} {recipe.description} (default calculator {recipe.default_calculator})")
        print("calculators:")
        for entry in available_calculators().values():
            print(f"  {entry.name:10s} {entry.description}")
        return 0
    if args.recipe is None or args.output is None:
        raise InputError("give a recipe and -o OUTPUT (or --list)")
    try:
        fmt = filetype(str(args.output), read=False)
    except UnknownFileTypeError:
        fmt = None
    if fmt not in ioformats or not ioformats[fmt].can_write:
        raise InputError(f"{args.output}: cannot tell a format ASE writes from its name "
                         "(e.g. .extxyz, .traj)")
    check_output_path(args.output)
    name = args.calculator or RECIPES[args.recipe].default_calculator
    calculator = make_calculator(name)
    frames = list(run_recipe(args.recipe, calculator, seed=args.seed, scale=args.scale))
    with atomic_output(args.output) as tmp:
        ase.io.write(tmp, frames, format=fmt)
    n_atoms = sum(len(a) for a in frames)
    print(f"wrote {len(frames)} configurations ({n_atoms} atoms) labelled with {name} to {args.output}")
    return 0
