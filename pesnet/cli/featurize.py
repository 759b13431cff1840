"""``pesnet featurize dataset.h5 -o features.h5``: descriptor values and derivatives of a dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

from pesnet.cli.compute_options import add_compute_arguments
from pesnet.errors import InputError


def _fractions(text: str):
    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"needs three comma-separated fractions, got {text!r}")
    return parts


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "featurize",
        help="compute symmetry-function features (and derivatives) of a dataset",
        description="Compute descriptor features (by default Behler-Parrinello symmetry "
        "functions, ACSF; or any registered descriptor kind) of every configuration of a "
        "dataset, with their analytic derivatives as sparse (centre, neighbour) blocks and "
        "per-atom strain derivatives, plus per-element standardisation statistics over the "
        "training split. The descriptor parameters and the dataset's SHA-256 are stored with "
        "the features. On any error nothing is written.",
    )
    parser.add_argument("dataset", type=Path, help="pesnet dataset (.h5)")
    parser.add_argument("-o", "--output", type=Path, required=True,
                        help="features file to write (.h5)")
    parser.add_argument("--descriptor-params", type=Path, metavar="FILE",
                        help="JSON or TOML file with elements, cutoff, g2, g4, g5 "
                        "(optional g3, angular_cutoff), or a registered kind and its "
                        "parameters; default: pesnet's default ACSF set for the dataset's "
                        "elements")
    parser.add_argument("--cutoff", type=float, default=6.0,
                        help="cutoff (Å) of the default parameter set (default 6)")
    parser.add_argument("--angular-cutoff", type=float,
                        help="shorter cutoff (Å) for the angular terms of the default set")
    parser.add_argument("--engine", choices=("numpy", "compiled"),
                        help="ACSF engine: numpy (default) or compiled (Numba, ~1.5x the "
                        "featurize speed; needs pesnet[fast]); results agree to rounding")
    parser.add_argument("--no-derivatives", action="store_true",
                        help="store values only (energy-only training)")
    parser.add_argument("--derivative-dtype", choices=("float16", "float32", "float64"),
                        default="float32",
                        help="storage type of derivative blocks (default float32: forces agree "
                        "with float64 to ~1e-7; float16: half the file, ~5e-4)")
    parser.add_argument("--split", type=_fractions, default=(0.8, 0.1, 0.1),
                        metavar="TRAIN,VAL,TEST",
                        help="split whose training part gives the statistics (default 0.8,0.1,0.1)")
    parser.add_argument("--seed", type=int, default=0, help="split seed (default 0)")
    parser.add_argument("--chunk-size", type=int, default=64,
                        help="configurations read from the dataset at a time (default 64)")
    add_compute_arguments(
        parser,
        "compute on a Dask cluster: a scheduler address (tcp://host:8786) or \"local\" "
        "(needs pesnet[dask]; the file is identical to an in-process one)",
        "with --scheduler: every worker writes its features to a shard beside the output "
        "instead of returning them to one writer (dataset and output on a filesystem every "
        "worker sees)")
    parser.add_argument("--quiet", action="store_true", help="print no summary or progress")
    parser.set_defaults(func=run)


def run(args) -> int:
    from pesnet.data import Dataset
    from pesnet.descriptors.bond_descriptor import check_new_cutoff
    from pesnet.descriptors.defaults import default_parameters
    from pesnet.descriptors.featurize import featurize, load_descriptor_params
    from pesnet.descriptors.registry import descriptor_from_params
    from pesnet.fileio import check_output_path

    check_output_path(args.output)
    if (args.shards or args.workers is not None) and args.scheduler is None:
        option = "--shards" if args.shards else "--workers"
        raise InputError(f"{option} needs --scheduler (an address or \"local\")")
    if args.chunk_size < 1:
        raise InputError(f"--chunk-size must be at least 1, got {args.chunk_size}")
    if args.descriptor_params is not None:
        descriptor = descriptor_from_params(load_descriptor_params(args.descriptor_params))
        check_new_cutoff(descriptor.cutoff)
    else:
        with Dataset(args.dataset) as ds:
            elements = ds.elements
        if not elements:
            raise InputError(f"{args.dataset}: the dataset has no atoms")
        descriptor = descriptor_from_params(default_parameters(
            elements, args.cutoff, angular_cutoff=args.angular_cutoff))
    if args.engine is not None:
        if descriptor.kind != "acsf":
            raise InputError(f"--engine applies to the ACSF kind, not {descriptor.kind!r}")
        descriptor = descriptor_from_params({**descriptor.params, "engine": args.engine})
    options = dict(derivatives=not args.no_derivatives, split=args.split, seed=args.seed,
                   derivative_dtype=args.derivative_dtype, chunk_size=args.chunk_size,
                   progress=not args.quiet)
    if args.scheduler is None:
        summary = featurize(args.dataset, args.output, descriptor, **options)
    else:
        summary = _featurize_on_cluster(args, descriptor, options)
    if not args.quiet:
        print(f"descriptor: {descriptor!r}")
        print(summary.format())
    return 0


def _featurize_on_cluster(args, descriptor, options):
    """The features computed on the Dask cluster of ``--scheduler``: returned to this
    process and written here, or with ``--shards`` written as shards by the workers."""
    from pesnet.distributed.cluster import open_cluster
    from pesnet.distributed.featurize import featurize_on_cluster
    from pesnet.distributed.shards import featurize_sharded

    compute = featurize_sharded if args.shards else featurize_on_cluster
    with open_cluster(args.scheduler, args.workers) as cluster:
        return compute(cluster, args.dataset, args.output, descriptor, **options)
