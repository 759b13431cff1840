"""The records the prediction engine (:mod:`pesnet.descriptors.acsf_evaluator`) keeps between its
forward and backward passes, and its per-thread scratch space."""

from __future__ import annotations

import threading
from math import prod
from typing import NamedTuple

import numpy as np


class Block(NamedTuple):
    """One block of centres of the angular terms (B centres, m neighbour slots).

    The contractions of every plan group, keys concatenated over the groups in plan order
    (c = (key, t), t the element of k): ``Y`` (B, n_c, m, 4) = Σ_k X_key,jk [1, u_k] [el_k = t]
    with X carrying q_j q_k, ``Yv`` (B, n_c, m) = its column 0 times (q'_j/q_j)/r_j,
    ``Z`` (B, n_dc, m, 4) likewise with the P' matrices and [1, D_k] (or None).
    """

    centres: np.ndarray   # (B,) atom indices
    bonds: np.ndarray     # (B, m) angular-bond index of each slot (n_angular in padding)
    u: np.ndarray         # (B, 3, 1, m) D_j / r_j (0 in padding)
    r: np.ndarray         # (B, 1, m)
    onehot: np.ndarray    # (B, n_el, m) neighbour element (False in padding)
    Y: np.ndarray
    Yv: np.ndarray
    Z: np.ndarray | None


class Layout(NamedTuple):
    """Padded per-(centre, element) layout of the bonds inside the radial cutoff."""

    inside: np.ndarray    # bonds of the pair list inside the cutoff
    n_rows: int
    width: int
    slot: np.ndarray      # padded slot of each inside bond
    extra: dict           # derived arrays, made on first use ("reverse")


class Tape(NamedTuple):
    """What :meth:`ACSFEvaluator.backward` needs of a forward pass.

    Radial terms, padded per (centre, neighbour element) row: ``rows``, ``width``,
    ``d_radial`` (rows, n_radial, width) ∂g_k/∂d (1/Å), ``u`` (3, rows·width) unit bond
    vectors and ``d`` (rows·width,) lengths of each slot (0 and the cutoff in padding),
    ``reverse`` (rows·width,) the slot of each bond's reverse (``rows·width`` in padding).
    Angular terms: ``centre``, ``neighbour`` (n_angular,) atoms and ``D`` (n_angular, 3) of
    the angular bonds, and the :class:`Block` s. ``config_atoms`` (n_configs + 1,).
    """

    n_atoms: int
    config_atoms: np.ndarray
    rows: int
    width: int
    d_radial: np.ndarray
    u: np.ndarray
    d: np.ndarray
    reverse: np.ndarray
    centre: np.ndarray | None
    neighbour: np.ndarray | None
    D: np.ndarray | None
    blocks: list | None


class Workspace(threading.local):
    """Large scratch arrays kept between calls (per thread): a fresh array of a few MB is
    mapped anew by the allocator and page-faults on every call, which cost ~30% of a step."""

    def __init__(self):
        self.buffers = {}

    def __reduce__(self):
        # scratch is not state: a pickled evaluator (Dask, multiprocessing) gets a fresh one
        return (Workspace, ())

    def get(self, name: str, shape, dtype=float) -> np.ndarray:
        size = prod(shape) if isinstance(shape, tuple) else int(shape)
        buffer = self.buffers.get(name)
        if buffer is None or buffer.size < size or buffer.dtype != dtype:
            buffer = self.buffers[name] = np.empty(size + size // 4, dtype)
        return buffer[:size].reshape(shape)
