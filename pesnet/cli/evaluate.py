"""``pesnet evaluate model.h5 DATA``: accuracy and uncertainty metrics, overall or per group.

``DATA`` is a pesnet dataset or any labelled file ASE reads (extxyz, traj, OUTCAR, ...; read
and validated as ``pesnet ingest`` would, into a temporary dataset). On the dataset the model
was trained on (the same bytes, or a file that ingests to them), the default is its test
split, so training data is never scored by accident; anywhere else every configuration is.
The first line says which.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

SPLITS = ("all", "train", "validation", "test")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="score a model on a dataset or labelled file",
        description="Score a model on a pesnet dataset or any labelled file ASE reads. "
        "Default: the test split of the dataset the model was trained on, else everything.")
    parser.add_argument("model", type=Path, help="model file")
    parser.add_argument("dataset", type=Path, help="pesnet dataset (.h5) or labelled file")
    parser.add_argument("--split", choices=SPLITS, default=None,
                        help="which configurations (default: test on the model's training "
                        "dataset, all elsewhere)")
    parser.add_argument("--by", metavar="KEY", choices=["config_type"],
                        help="one row per group (config_type: the group kept by `pesnet "
                        "ingest --group-key`)")
    parser.add_argument("--format", dest="fmt", help="ASE format of a labelled file")
    parser.add_argument("--index", default=":", help="frames of a labelled file (ASE syntax)")
    parser.add_argument("--group-key", default="config_type",
                        help="info key holding a labelled file's group (default config_type)")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    parser.set_defaults(func=run)


def is_pesnet_dataset(path: Path) -> bool:
    """Whether ``path`` is an HDF5 file whose root says pesnet-dataset."""
    import h5py

    from pesnet.data.schema import FORMAT_NAME

    if not path.is_file() or not h5py.is_hdf5(path):
        return False
    with h5py.File(path, "r") as f:
        return f.attrs.get("format") == FORMAT_NAME


def split_of(model, dataset_path, name, same: bool | None = None, shown=None):
    """Indices of split ``name`` of the dataset the model was trained on (None for all);
    ``same``: :func:`trained_on` if already known (it hashes the whole file); ``shown``: the
    path to name in the error (default ``dataset_path``)."""
    from pesnet.data import Dataset
    from pesnet.data.split import split_from_info
    from pesnet.errors import InputError

    if name == "all":
        return None
    if not (trained_on(model, dataset_path) if same is None else same):
        raise InputError(f"{shown or dataset_path}: not the dataset this model was trained on, "
                         f"so it has no {name} split; use --split all")
    info = model.metadata["split"]
    with Dataset(dataset_path) as ds:
        n = len(ds)
    return getattr(split_from_info(info, n), name)


def trained_on(model, dataset_path) -> bool:
    """Whether ``dataset_path`` is the dataset ``model`` was trained on (same bytes)."""
    from pesnet.fileio import sha256_file

    return (model.metadata.get("split") is not None
            and model.metadata.get("dataset_sha256") == sha256_file(dataset_path))


def run(args) -> int:
    from pesnet.data.ingest import LabelKeys, ingest
    from pesnet.potential.evaluate import (
        evaluate_potential,
        format_group_metrics,
        format_metrics,
        group_metrics,
    )
    from pesnet.potential.io import load_model

    model = load_model(args.model)
    with tempfile.TemporaryDirectory(prefix="pesnet-evaluate-") as scratch:
        dataset = args.dataset
        if not is_pesnet_dataset(dataset):
            dataset = Path(scratch) / "dataset.h5"
            ingest([args.dataset], dataset, fmt=args.fmt, index=args.index, keys=LabelKeys(),
                   group_key=args.group_key)
        same = trained_on(model, dataset)
        split = args.split or ("test" if same else "all")
        indices = split_of(model, dataset, split, same, shown=args.dataset)
        result = evaluate_potential(model, dataset, indices, progress=not args.json)
    what = "every configuration" if split == "all" else f"the {split} split"
    scored = f"scored {what} of {args.dataset} ({result.metrics['n_configs']} configurations)"
    if args.json:
        out = {"split": split, "dataset": str(args.dataset), **result.metrics}
        if args.by:
            out["groups"] = group_metrics(result)
        print(json.dumps(out, indent=2))
        return 0
    print(scored)
    print(format_metrics(result.metrics))
    if args.by:
        print()
        print(format_group_metrics(group_metrics(result)))
    return 0
