"""Checks on a model file's attributes (JSON text), made before anything is built from them.

A model file is data from outside: a truncated copy, a hand edit or a bug elsewhere can leave
a string where a calibration factor belongs, element 200, a config asking for 10^9 members,
or bytes where JSON text belongs. Each function here checks one attribute of the layout
(:mod:`pesnet.potential.io`) and raises :class:`~pesnet.errors.DataFormatError` naming the
attribute at fault, without the file's path (:func:`pesnet.potential.io.read_model_group`
adds it). The arrays are checked in :mod:`pesnet.potential.model_file_arrays`.
"""

from __future__ import annotations

import json
import math

import numpy as np
from ase.data import chemical_symbols

from pesnet.descriptors.registry import descriptor_from_params
from pesnet.errors import DataFormatError, InputError
from pesnet.nn.activations import get_activation
from pesnet.nn.initializers import get_initializer

MAX_Z = len(chemical_symbols) - 1   # 118, oganesson
NETWORK_DTYPES = ("float64", "float32")


def short(value, limit: int = 60) -> str:
    """``repr(value)`` on one line, cut to ``limit`` characters (NumPy arrays print over
    several lines; messages must stay one readable line)."""
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def is_int(value) -> bool:
    """A JSON/NumPy integer, not a bool (``True`` is an int to Python, not a count)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_finite_real(value) -> bool:
    """A JSON/NumPy real number (int or float, not a bool) finite as a float (JSON allows
    NaN, Infinity and integers like 10**400, which overflow a float)."""
    if not (is_int(value) or isinstance(value, (float, np.floating))):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def json_attribute(obj, name: str, label: str, required: bool = True, default=None):
    """The parsed JSON text of attribute ``name`` of ``obj`` (``default`` if absent and not
    ``required``; an attribute holding JSON ``null`` is not absent).

    ``label`` names it in messages (``"descriptor attribute"``). Text may be stored as str or,
    by other HDF5 writers, as a scalar of UTF-8 bytes; anything else is refused.
    """
    try:
        value = obj.attrs.get(name)
    except (OSError, TypeError, ValueError) as error:
        raise DataFormatError(f"{label} cannot be read ({error})") from None
    if value is None:
        if required:
            raise DataFormatError(f"{label} is missing")
        return default
    if isinstance(value, (bytes, np.bytes_)):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise DataFormatError(f"{label} is not UTF-8 text") from None
    if not isinstance(value, str):
        kind = (f"an array of {value.dtype}" if isinstance(value, np.ndarray)
                else f"a {type(value).__name__}")
        raise DataFormatError(f"{label} must be JSON text, got {kind}")
    try:
        return json.loads(value)
    except (ValueError, RecursionError) as error:
        raise DataFormatError(f"{label} is not valid JSON ({error})") from None


def check_descriptor(params):
    """The descriptor of the ``descriptor`` attribute's parameters, of the kind they name
    (ACSF when they name none: files written before kinds existed); any bad value refused."""
    try:
        return descriptor_from_params(params)
    except (InputError, ValueError, TypeError, OverflowError) as error:
        raise DataFormatError(f"descriptor attribute: {error}") from None


def check_elements(value, descriptor) -> list:
    """The ``elements`` attribute: distinct atomic numbers, the descriptor's elements."""
    if not isinstance(value, list) or not value:
        raise DataFormatError(f"elements attribute must be a non-empty list of atomic numbers, "
                              f"got {short(value)}")
    for z in value:
        if not is_int(z) or not 1 <= z <= MAX_Z:
            raise DataFormatError(f"elements attribute: {short(z)} is not an atomic number "
                                  f"(1..{MAX_Z})")
    if len(set(value)) != len(value):
        raise DataFormatError(f"elements attribute lists an element twice: {short(value)}")
    if sorted(value) != list(descriptor.elements):
        raise DataFormatError(f"elements attribute {short(value)} does not match the "
                              f"descriptor's elements {list(descriptor.elements)}")
    return [int(z) for z in value]


def check_labels(value, descriptor) -> None:
    """The ``labels`` attribute: one string per descriptor feature."""
    if (not isinstance(value, list) or len(value) != descriptor.n_features
            or not all(isinstance(label, str) for label in value)):
        raise DataFormatError(f"labels attribute must list {descriptor.n_features} strings "
                              f"(the descriptor's n_features), got {short(value)}")


def check_calibration(value) -> dict:
    """The ``calibration`` attribute: {"energy": s_E, "forces": s_F}, finite factors >= 0."""
    if not isinstance(value, dict):
        raise DataFormatError(f'calibration attribute must be an object like {{"energy": 1.0, '
                              f'"forces": 1.0}}, got {short(value)}')
    for key, factor in value.items():
        if key not in ("energy", "forces"):
            raise DataFormatError(f"calibration attribute has an unknown key {short(key)}")
        if not is_finite_real(factor) or factor < 0:
            raise DataFormatError(f"calibration attribute: {key} factor must be a finite number "
                                  f">= 0, got {short(factor)}")
    return value


def check_metadata(value) -> dict:
    """The ``metadata`` attribute: a JSON object (its contents are informational)."""
    if not isinstance(value, dict):
        raise DataFormatError(f"metadata attribute must be a JSON object, got {short(value)}")
    return value


def check_network_config(config, label: str) -> tuple[tuple[int, ...], int]:
    """Check an MLP config's types (not yet its sizes against the arrays); returns
    (layer_sizes, n_members). ``label`` names it (``"networks/H config attribute"``)."""
    if not isinstance(config, dict):
        raise DataFormatError(f"{label} must be a JSON object, got {short(config)}")
    sizes, m = config.get("layer_sizes"), config.get("n_members")
    if (not isinstance(sizes, list) or len(sizes) < 2
            or not all(is_int(n) and n >= 1 for n in sizes)):
        raise DataFormatError(f"{label}: layer_sizes must list at least two positive integers, "
                              f"got {short(sizes)}")
    if not is_int(m) or m < 1:
        raise DataFormatError(f"{label}: n_members must be a positive integer, got {short(m)}")
    if config.get("dtype", "float64") not in NETWORK_DTYPES:
        raise DataFormatError(f"{label}: dtype must be one of {', '.join(NETWORK_DTYPES)}, "
                              f"got {short(config.get('dtype'))}")
    for key, minimum in (("seed", 0), ("member_offset", -1)):
        value = config.get(key, minimum)
        if not is_int(value) or value < minimum:
            raise DataFormatError(f"{label}: {key} must be an integer >= {minimum}, got "
                                  f"{short(value)}")
    init = config.get("init", "custom")
    try:
        if init != "custom":  # what MLP.config() writes for a callable initialiser
            get_initializer(init)
    except (InputError, TypeError) as error:
        raise DataFormatError(f"{label}: init {short(init)}: {error}") from None
    check_activations(config, len(sizes) - 2, label)
    return tuple(int(n) for n in sizes), int(m)


def check_activations(config: dict, n_hidden: int, label: str) -> None:
    """Hidden activations (a list, one per hidden layer, or empty) and the output activation:
    names or {"name": ..., parameter: finite number}."""
    hidden = config.get("activations", [])
    if not isinstance(hidden, list) or (hidden and len(hidden) != n_hidden):
        raise DataFormatError(f"{label}: activations must list {n_hidden} activation(s), one "
                              f"per hidden layer of layer_sizes, got {short(hidden)}")
    for spec in [*hidden, config.get("output_activation", "identity")]:
        params = spec if isinstance(spec, dict) else {}
        numbers = [v for k, v in params.items() if k != "name"]
        if not isinstance(spec, (str, dict)) or not all(is_finite_real(v) for v in numbers):
            raise DataFormatError(f"{label}: bad activation {short(spec)}")
        try:
            get_activation(spec)
        except (InputError, ValueError, TypeError) as error:
            raise DataFormatError(f"{label}: {error}") from None
