"""``pesnet train features.h5 -o model.h5``: fit an ensemble potential."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pesnet.errors import InputError
from pesnet.training.batch_stream import DEFAULT_MEMORY_BUDGET_MB

#: Command-line flags that override a setting of the same name.
_FLAGS = {
    "epochs": int, "n_members": int, "seed": int, "batch_size": int, "learning_rate": float,
    "energy_weight": float, "force_weight": float, "stress_weight": float, "patience": int,
    "activation": str,
    "checkpoint_every": int,
}


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="fit an ensemble potential on a features file",
        description="Train one ensemble MLP per element on energies and forces, with early "
        "stopping on the validation split and a calibrated spread; writes an HDF5 model.",
    )
    parser.add_argument("features", type=Path, help="features file from `pesnet featurize`")
    parser.add_argument("-o", "--output", type=Path, required=True, help="model file to write")
    parser.add_argument("--dataset", type=Path,
                        help="dataset with the labels (default: the one the features name)")
    parser.add_argument("--config", type=Path,
                        help="TOML file of training settings (a [train] table or top-level keys)")
    parser.add_argument("--hidden", help="hidden widths, e.g. 32,32")
    for name, kind in _FLAGS.items():
        flag = "--members" if name == "n_members" else "--" + name.replace("_", "-")
        parser.add_argument(flag, dest=name, type=kind, help=f"override the setting {name}")
    parser.add_argument("--checkpoint", type=Path,
                        help="checkpoint file (default: OUTPUT with .ckpt.h5)")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    parser.add_argument("--memory-budget", type=float, metavar="MB",
                        help="hold the training batches in memory up to this estimated size, "
                        "stream them from the features file above it (default "
                        f"{DEFAULT_MEMORY_BUDGET_MB:.0f}; same results either way)")
    parser.add_argument("--quiet", action="store_true", help="no progress display")
    parser.set_defaults(func=run)


def load_settings(args):
    from pesnet.training.settings import TrainSettings

    values = {}
    if args.config is not None:
        try:
            with open(args.config, "rb") as handle:
                table = tomllib.load(handle)
        except FileNotFoundError:
            raise InputError(f"{args.config}: no such file") from None
        except tomllib.TOMLDecodeError as error:
            raise InputError(f"{args.config}: invalid TOML ({error})") from None
        values = dict(table.get("train", table))
    for name in _FLAGS:
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    if args.hidden:
        try:
            values["hidden"] = [int(h) for h in args.hidden.split(",")]
        except ValueError:
            raise InputError(f"--hidden must be comma-separated integers, got {args.hidden!r}") from None
    return TrainSettings.from_dict(values, where=str(args.config or "training settings"))


def run(args) -> int:
    from pesnet.fileio import check_output_path
    from pesnet.potential.io import save_model
    from pesnet.training.progress import ProgressBar
    from pesnet.training.trainer import train_potential

    settings = load_settings(args)
    if args.memory_budget is not None and args.memory_budget < 0:
        raise InputError(f"--memory-budget must be >= 0 MB, got {args.memory_budget}")
    budget = DEFAULT_MEMORY_BUDGET_MB if args.memory_budget is None else args.memory_budget
    checkpoint = args.checkpoint or args.output.with_suffix(".ckpt.h5")
    check_output_path(args.output)
    check_output_path(checkpoint)
    callbacks = [] if args.quiet else [ProgressBar(settings.epochs)]
    result = train_potential(args.features, settings, dataset_path=args.dataset,
                             callbacks=callbacks, checkpoint_path=checkpoint, resume=args.resume,
                             memory_budget_mb=budget)
    save_model(result.potential, args.output)
    if not args.quiet:
        last = result.history[-1]
        print(f"trained {result.potential.n_members} members for {last.epoch + 1} epochs; "
              f"validation MAE {1e3 * last.val_energy_mae_ensemble:.2f} meV/atom, "
              f"{1e3 * last.val_force_mae_ensemble:.1f} meV/Å; spread calibration "
              f"energy ×{result.potential.calibration['energy']:.2f}, "
              f"forces ×{result.potential.calibration['forces']:.2f}")
        print(f"wrote {args.output}")
    return 0
