"""Ingest: any ASE-readable file(s) → one validated pesnet dataset file.

Every frame of every input is read unless ``index`` selects fewer: for a VASP ``OUTCAR`` or
``vasprun.xml`` and a Quantum ESPRESSO pw.x output that is every ionic step, where
``ase.io.read(path)`` alone gives only the last. The same selection applies to each input.
Labels keep ASE's units and sign (eV, eV/Å, stress in eV/Å³ with ASE's sign: positive is
tensile, pressure = -trace/3), which ASE's readers convert to from each code's own.

Configurations are streamed (``ase.io.iread``), validated one by one
(:mod:`pesnet.data.validate`) and appended to a :class:`~pesnet.data.writer.DatasetWriter`
writing a temporary file, which is renamed over the output only when every configuration of
every input passed. Labels come from the attached calculator results (what ASE's readers build:
a ``SinglePointCalculator``) or from named ``info``/``arrays`` keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pesnet.data.schema import VOIGT
from pesnet.data.validate import validate_configuration
from pesnet.data.writer import DatasetWriter
from pesnet.errors import ConfigurationError, InputError
from pesnet.fileio import atomic_output, sha256_file


@dataclass(frozen=True)
class LabelKeys:
    """Where to find labels. ``None`` means: the attached calculator's results (ASE default)."""

    energy: str | None = None
    forces: str | None = None
    stress: str | None = None


def check_readable(path: Path) -> None:
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a file")
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except OSError as error:
        raise InputError(f"{path}: cannot be read ({error.strerror or error})") from None


def resolve_format(path: Path, fmt: str | None) -> str:
    """The ASE format name for ``path``: ``fmt`` if given (checked), else ASE's guess."""
    from ase.io.formats import UnknownFileTypeError, filetype, ioformats

    if fmt is not None:
        if fmt not in ioformats:
            raise InputError(
                f"{path}: unknown format {fmt!r} (see `ase info --formats` for the names ASE knows)"
            )
        if not ioformats[fmt].can_read:
            raise InputError(f"{path}: ASE cannot read the format {fmt!r}")
        return fmt
    try:
        guessed = filetype(str(path), guess=True)
        if guessed not in ioformats or not ioformats[guessed].can_read:
            raise UnknownFileTypeError(guessed)
        return guessed
    except UnknownFileTypeError:
        # ASE knows a vasprun.xml by its name only (*vasp*.xml)
        hint = "; --format vasp-xml for a renamed vasprun.xml" if path.suffix == ".xml" else ""
        raise InputError(
            f"{path}: cannot tell the file format; pass --format (see `ase info --formats`){hint}"
        ) from None
    except Exception as error:  # ASE's sniffing reads the file and may fail in many ways
        raise InputError(f"{path}: cannot tell the file format ({error}); pass --format") from None


def _calc_result(atoms, name):
    calc = atoms.calc
    if calc is None:
        return None
    return getattr(calc, "results", {}).get(name)


def to_voigt(stress) -> np.ndarray:
    """A stress (eV/Å³) as ASE's Voigt 6-vector xx yy zz yz xz xy; a (6,) input is kept."""
    stress = np.asarray(stress, dtype=float)
    if stress.shape == (3, 3):
        return stress[VOIGT]
    return stress


def extract_labels(atoms, keys: LabelKeys, path, index):
    """(energy, forces, stress) of one configuration; each ``None`` when absent.

    With a key given, ``info``/``arrays`` are looked up first, then the calculator results under
    the same name; a named key that is missing is an error (the user asked for it).
    """

    def lookup(key, where, default_name):
        if key is None:
            value = _calc_result(atoms, default_name)
            if value is None and default_name in where:
                value = where[default_name]
            return value
        if key in where:
            return where[key]
        value = _calc_result(atoms, key)
        if value is None:
            raise ConfigurationError(path, index, f"no label under the key {key!r}")
        return value

    energy = lookup(keys.energy, atoms.info, "energy")
    forces = lookup(keys.forces, atoms.arrays, "forces")
    stress = lookup(keys.stress, atoms.info, "stress")
    try:
        energy = None if energy is None else float(np.asarray(energy, dtype=float).reshape(()))
    except (TypeError, ValueError):
        raise ConfigurationError(path, index, f"energy is not a number: {energy!r}") from None
    try:
        forces = None if forces is None else np.asarray(forces, dtype=float)
        stress = None if stress is None else np.asarray(stress, dtype=float)
    except (TypeError, ValueError):
        raise ConfigurationError(path, index, "forces or stress are not numeric") from None
    return energy, forces, stress


def configuration_label(k: int, index: str):
    """How a message names the ``k``-th selected configuration: ``k`` when every frame is
    read, else ``"k of the selection '::10'"`` (``k`` counts selected frames, not the file's)."""
    return k if index == ":" else f"{k} of the selection {index!r}"


def iter_configurations(path: Path, fmt: str, index: str):
    """Yield ``(k, atoms)`` for the frames ``index`` selects (ASE syntax; ``k`` counts them
    from 0), turning any reader failure into a :class:`ConfigurationError`."""
    import ase.io

    try:
        frames = ase.io.iread(str(path), index=index, format=fmt)
    except Exception as error:  # ASE readers raise anything on bad input
        raise ConfigurationError(path, configuration_label(0, index),
                                 f"cannot be read as {fmt}: {error}") from None
    k = 0
    while True:
        try:
            atoms = next(frames)
        except StopIteration:
            return
        except Exception as error:  # a truncated or garbled record
            message = str(error) or type(error).__name__
            raise ConfigurationError(path, configuration_label(k, index),
                                     f"cannot be read as {fmt}: {message}") from None
        yield k, atoms
        k += 1


def _checked_inputs(inputs, output, fmt: str | None, index: str):
    """(input paths, their ASE formats, output path): every input readable and not the
    output, the ``index`` selection in ASE's syntax."""
    from ase.io.formats import string2index

    inputs = [Path(p) for p in inputs]
    if not inputs:
        raise InputError("no input files given")
    try:
        string2index(index)
    except (ValueError, TypeError):
        raise InputError(f"invalid --index {index!r}: use ASE's syntax, e.g. ':', '-1', '::10'") from None
    output = Path(output)
    for path in inputs:
        check_readable(path)
        if path.resolve() == output.resolve():
            raise InputError(f"{path}: the output file must differ from every input")
    return inputs, [resolve_format(path, fmt) for path in inputs], output


def _append_file(writer, path: Path, path_format: str, index: str, keys: LabelKeys,
                 allow_unlabelled: bool, group_key: str, bar) -> int:
    """Validate and append every selected configuration of one input file; returns how many
    (an :class:`InputError` for none)."""
    source = writer.add_source(path, sha256_file(path), path_format, index)
    n_here = 0
    for k, atoms in iter_configurations(path, path_format, index):
        where = configuration_label(k, index)
        energy, forces, stress = extract_labels(atoms, keys, path, where)
        validate_configuration(
            atoms, energy, forces, stress, path, where,
            require_energy=not allow_unlabelled, require_forces=not allow_unlabelled,
        )
        config_type = str(atoms.info.get(group_key, ""))
        if "\x00" in config_type:  # HDF5 strings end at NUL
            raise ConfigurationError(path, where, "config_type contains a NUL character")
        writer.append(
            atoms.get_atomic_numbers(), atoms.get_positions(), atoms.get_cell()[:],
            atoms.get_pbc(), energy=energy, forces=forces,
            stress=None if stress is None else to_voigt(stress),
            config_type=config_type,
            source=source, source_index=k,
        )
        n_here += 1
        if bar is not None:
            bar.update(1)
    if n_here == 0:  # e.g. an OUTCAR renamed run.log, which ASE takes for Gaussian output
        raise InputError(f"{path}: no configurations found reading it as {path_format} "
                         f"(selection {index!r}); pass --format if it is another format")
    return n_here


def ingest(
    inputs,
    output,
    fmt: str | None = None,
    index: str = ":",
    keys: LabelKeys = LabelKeys(),
    allow_unlabelled: bool = False,
    progress: bool = False,
    group_key: str = "config_type",
) -> int:
    """Read every configuration of ``inputs`` into a new dataset at ``output``.

    ``index`` (ASE syntax, default ``":"``: every frame, every ionic step of a DFT output)
    selects the same frames from each input; ``fmt`` (an ASE format name) overrides ASE's
    guess from each file's name and contents.

    ``group_key`` names the ``info`` key whose value is kept as each configuration's group
    (the dataset's ``config_type``; empty where a configuration lacks the key), by which
    ``pesnet evaluate --by config_type`` and the pipeline break metrics down.

    Returns the number of configurations written. Raises :class:`InputError` (or its subclass
    :class:`ConfigurationError`) on the first bad file or configuration; then ``output`` is
    untouched (an existing file keeps its contents).
    """
    if keys.stress is not None and keys.stress.lower() == "virial":
        raise InputError("--stress-key virial: a virial (eV, W = -σV) is not a stress; "
                         "store -virial / volume (eV/Å³) under another key and name that")
    inputs, formats, output = _checked_inputs(inputs, output, fmt, index)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(disable=None, unit=" configs", desc="ingest", leave=False)
    total = 0
    try:
        with atomic_output(output, suffix=".h5.tmp") as tmp, DatasetWriter(tmp) as writer:
            for path, path_format in zip(inputs, formats):
                total += _append_file(writer, path, path_format, index, keys,
                                      allow_unlabelled, group_key, bar)
    finally:
        if bar is not None:
            bar.close()
    return total
