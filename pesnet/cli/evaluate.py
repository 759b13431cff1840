"""``pesnet evaluate model.h5 dataset.h5``: accuracy and uncertainty metrics."""

from __future__ import annotations

import json
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("evaluate", help="score a model on a dataset")
    parser.add_argument("model", type=Path, help="model file")
    parser.add_argument("dataset", type=Path, help="pesnet dataset (.h5)")
    parser.add_argument("--split", choices=["all", "train", "validation", "test"], default="all",
                        help="which configurations (a split needs the model's training dataset)")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    parser.set_defaults(func=run)


def split_of(model, dataset_path, name):
    """Indices of split ``name`` of the dataset the model was trained on (None for all)."""
    from pesnet.data import Dataset, split_indices
    from pesnet.errors import InputError
    from pesnet.fileio import sha256_file

    if name == "all":
        return None
    info = model.metadata.get("split")
    digest = model.metadata.get("dataset_sha256")
    if info is None or digest != sha256_file(dataset_path):
        raise InputError(f"{dataset_path}: not the dataset this model was trained on, so it has "
                         f"no {name} split; use --split all")
    with Dataset(dataset_path) as ds:
        n = len(ds)
    return getattr(split_indices(n, tuple(info["fractions"]), int(info["seed"])), name)


def run(args) -> int:
    from pesnet.potential.evaluate import evaluate_potential, format_metrics
    from pesnet.potential.io import load_model

    model = load_model(args.model)
    indices = split_of(model, args.dataset, args.split)
    result = evaluate_potential(model, args.dataset, indices, progress=not args.json)
    if args.json:
        print(json.dumps(result.metrics, indent=2))
    else:
        print(format_metrics(result.metrics))
    return 0
