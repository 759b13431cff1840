"""Descriptor kinds by name: the one place a ``kind`` string becomes a class.

Model files and features files store a descriptor as its JSON parameters, whose ``kind`` names
the class (:mod:`pesnet.descriptors.protocol`); files written before kinds existed have none
and are ACSF. A new kind registers itself once::

    from pesnet.descriptors.registry import register
    register("gaussian", GaussianDescriptor)

and then featurizes, trains, saves, loads and predicts like ACSF.
"""

from __future__ import annotations

from pesnet.descriptors.acsf import ACSF
from pesnet.descriptors.ani import ANIDescriptor, default_ani
from pesnet.errors import InputError, did_you_mean

#: Kind assumed for parameters without a ``kind`` key (files written before kinds existed).
LEGACY_KIND = "acsf"

_KINDS: dict[str, type] = {}
_DEFAULTS: dict = {}


def register(kind: str, cls: type, defaults=None) -> None:
    """Make ``cls`` (a :class:`~pesnet.descriptors.protocol.Descriptor` class whose
    ``params`` carry ``"kind": kind``) the class of descriptor kind ``kind``.

    ``defaults``: optionally a function ``(elements, cutoff=..., angular_cutoff=...)`` →
    descriptor, the kind's default parameter set (what a spec's ``kind`` without ``params``
    means); its keyword arguments keep their own defaults when not given.
    """
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"a descriptor kind is a non-empty string, got {kind!r}")
    _KINDS[kind] = cls
    if defaults is not None:
        _DEFAULTS[kind] = defaults
    else:
        _DEFAULTS.pop(kind, None)


def kind_defaults(kind: str):
    """The default-parameter function registered with ``kind``, or ``None``."""
    return _DEFAULTS.get(kind)


def kinds() -> tuple[str, ...]:
    """The registered kinds, sorted."""
    return tuple(sorted(_KINDS))


def descriptor_class(kind: str) -> type:
    """The class registered as ``kind``; a one-line ``InputError`` with a suggestion if none."""
    cls = _KINDS.get(kind)
    if cls is None:
        known = kinds()
        hint = did_you_mean(str(kind), known) if isinstance(kind, str) else ""
        raise InputError(f"unknown descriptor kind {kind!r}{hint} (known: {', '.join(known)})")
    return cls


def descriptor_kind(params) -> str:
    """The ``kind`` of descriptor parameters (:data:`LEGACY_KIND` when absent)."""
    if not isinstance(params, dict):
        raise InputError("descriptor parameters must be a mapping")
    return params.get("kind", LEGACY_KIND)


def descriptor_from_params(params):
    """The descriptor of JSON parameters ``params`` (its class chosen by ``kind``)."""
    return descriptor_class(descriptor_kind(params)).from_params(params)


register("acsf", ACSF)
register("ani", ANIDescriptor, defaults=default_ani)
