"""An ensemble of fully connected networks with a leading member axis.

Notation (layer ``l = 1..L``, member axis ``M`` first, batch ``B``)::

    a_0 = x                        x: (B, n_0) shared by all members, or (M, B, n_0)
    z_l = a_{l-1} W_l + b_l        W_l: (M, n_{l-1}, n_l),  b_l: (M, n_l)
    a_l = f_l(z_l)                 f_l: hidden activation, f_L: output activation (identity)
    y   = a_L                      y: (M, B, n_L)

All members run in one batched matmul per layer; no Python loop over members or samples.
The parameters of all members live in ONE array ``params`` of shape ``(M, P)`` (member-major,
each member's parameters contiguous, blocks padded to 64-byte boundaries); ``weights[l]`` and
``biases[l]`` are views into it, so an optimiser updates every layer of every member with a
handful of ufunc calls, and a contiguous range of members is a view (``view(start, stop)``)
that a worker thread can train without copying anything.

Units: whatever the caller's inputs and outputs carry (the potential uses scaled descriptors
in, eV out). The backward passes live in :mod:`pesnet.nn.backprop`.
"""

from __future__ import annotations

import threading

import numpy as np

from pesnet.errors import InputError
from pesnet.nn import backprop
from pesnet.nn.activations import get_activation
from pesnet.nn.initializers import INIT, get_initializer, member_rng, resolve_seed

__all__ = ["MLP", "ForwardCache"]

_ALIGN_BYTES = 64


def _layout(sizes, dtype):
    """Offsets of each layer's W and b inside one member's flat parameter row, and its length P."""
    step = max(1, _ALIGN_BYTES // np.dtype(dtype).itemsize)
    pad = lambda n: -(-n // step) * step  # noqa: E731
    offsets, p = [], 0
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        w_off = p
        p = pad(p + n_in * n_out)
        b_off = p
        p = pad(p + n_out)
        offsets.append((w_off, b_off))
    return offsets, p


class ForwardCache:
    """What the forward pass keeps for the backward passes.

    ``x``: the input, (B, n_0) or (M, B, n_0). ``a[l]``: output of layer l+1, (M, B, n_{l+1}).
    ``z[l]``: its pre-activation, or None when the activation's derivatives are computed from
    ``a[l]`` alone (then ``z`` was overwritten in place). ``delta``/``tmp``: scratch buffers of
    the backward pass, reused between calls of equal shape.
    """

    __slots__ = ("x", "z", "a", "delta", "tmp", "dy", "ones", "shape")

    def __init__(self, mlp, batch):
        m, dt = mlp.n_members, mlp.dtype
        self.shape = (m, batch)
        self.a = [np.empty((m, batch, n), dt) for n in mlp.sizes[1:]]
        self.z = [None if act.from_output else np.empty_like(a)
                  for act, a in zip(mlp.activations, self.a)]
        self.delta = [np.empty_like(a) for a in self.a]
        self.tmp = [np.empty_like(a) for a in self.a]
        self.dy = np.empty_like(self.a[-1])
        self.ones = np.ones((1, batch), dt)
        self.x = None

    @property
    def output(self):
        """Network output y, (M, B, n_L)."""
        return self.a[-1]


class MLP:
    """Ensemble of ``n_members`` MLPs with layer widths ``layer_sizes = (n_in, h1, ..., n_out)``.

    Parameters
    ----------
    layer_sizes : sequence of int, at least (n_in, n_out); ``(1, 1)`` is one linear neuron.
    n_members : number of members M.
    activation : hidden activation, a name/dict/:class:`Activation`, or one per hidden layer.
    output_activation : activation of the last layer (default identity).
    init : initialiser name (``xavier_uniform``, ``xavier_normal``, ``he_uniform``, ``he_normal``).
    seed : ensemble seed (int; None draws one). Member ``member_offset + m`` draws its weights
        from its own generator (:func:`pesnet.nn.initializers.member_rng`).
    member_offset : index of the first member within the seed's ensemble.
    dtype : float64 (default) or float32.
    """

    def __init__(self, layer_sizes, n_members=1, *, activation="tanh",
                 output_activation="identity", init="xavier_uniform", seed=None,
                 member_offset=0, dtype=np.float64):
        sizes = tuple(int(n) for n in layer_sizes)
        if len(sizes) < 2 or min(sizes) < 1:
            raise InputError(
                f"layer_sizes must hold at least two positive widths, got {layer_sizes!r}")
        if int(n_members) < 1:
            raise InputError(f"n_members must be >= 1, got {n_members!r}")
        dtype = np.dtype(dtype)
        if dtype not in (np.float64, np.float32):
            raise InputError(f"dtype must be float64 or float32, got {dtype}")
        n_hidden = len(sizes) - 2
        if isinstance(activation, (list, tuple)):
            if len(activation) != n_hidden:
                raise InputError(
                    f"{len(activation)} activations given for {n_hidden} hidden layers")
            hidden = [get_activation(a) for a in activation]
        else:
            hidden = [get_activation(activation)] * n_hidden
        self.sizes = sizes
        self.n_members = int(n_members)
        self.dtype = dtype
        self.activations = hidden + [get_activation(output_activation)]
        self.init = init
        self.seed = resolve_seed(seed)
        self.member_offset = int(member_offset)
        self._offsets, self.n_padded = _layout(sizes, dtype)
        self.params = np.zeros((self.n_members, self.n_padded), dtype)
        self._bind()
        initializer = get_initializer(init)
        for m in range(self.n_members):  # not a hot path: once per fit
            rng = member_rng(self.seed, self.member_offset + m, INIT)
            for W, (n_in, n_out) in zip(self.weights, zip(sizes[:-1], sizes[1:])):
                W[m] = initializer(rng, n_in, n_out, dtype)

    # -- parameter storage -------------------------------------------------------------
    def _bind(self):
        self.weights, self.biases = self.layer_views(self.params)

    def layer_views(self, flat):
        """Views ``([W_1..W_L], [b_1..b_L])`` into a flat (M', P) array laid out like ``params``."""
        Ws, bs = [], []
        for (w_off, b_off), n_in, n_out in zip(self._offsets, self.sizes[:-1], self.sizes[1:]):
            Ws.append(flat[:, w_off:w_off + n_in * n_out].reshape(-1, n_in, n_out))
            bs.append(flat[:, b_off:b_off + n_out])
        return Ws, bs

    @property
    def n_layers(self):
        return len(self.sizes) - 1

    @property
    def n_params(self):
        """Trainable parameters per member."""
        return sum(i * o + o for i, o in zip(self.sizes[:-1], self.sizes[1:]))

    def zeros_like_params(self):
        """A zero (M, P) array laid out like ``params`` (for gradients, optimiser state)."""
        return np.zeros_like(self.params)

    def _derived(self, params):
        new = object.__new__(MLP)
        new.__dict__.update(self.__dict__)
        new.__dict__.pop("_scratch_store", None)
        new.params = params
        new.n_members = params.shape[0]
        new._bind()
        return new

    def view(self, start, stop):
        """Members ``start:stop`` as an MLP that SHARES this one's parameter memory."""
        if not 0 <= start < stop <= self.n_members:
            raise InputError(f"member range {start}:{stop} outside 0:{self.n_members}")
        new = self._derived(self.params[start:stop])
        new.member_offset = self.member_offset + start
        return new

    def select_members(self, indices):
        """A new MLP holding copies of the members ``indices`` (a sequence of ints)."""
        idx = np.asarray(indices, dtype=np.intp).ravel()
        if idx.size == 0 or idx.min() < -self.n_members or idx.max() >= self.n_members:
            raise InputError(f"member indices {indices!r} outside 0..{self.n_members - 1}")
        idx = idx % self.n_members
        new = self._derived(np.ascontiguousarray(self.params[idx]))
        contiguous = idx.size == 1 or bool(np.all(np.diff(idx) == 1))
        # member_offset records which members of the seed's ensemble these are (None: scattered)
        new.member_offset = (self.member_offset + int(idx[0])
                             if contiguous and self.member_offset is not None else None)
        return new

    def copy(self):
        """An independent copy."""
        return self._derived(self.params.copy())

    def astype(self, dtype):
        """A copy in another float dtype."""
        new = MLP.from_arrays(self.config() | {"dtype": np.dtype(dtype).name}, self.arrays())
        return new

    # -- plain-array export (HDF5-friendly: no pickle) ---------------------------------
    def config(self):
        """Hyper-parameters as a JSON-able dict; with :meth:`arrays` it rebuilds the network."""
        return {
            "layer_sizes": list(self.sizes), "n_members": self.n_members,
            "activations": [a.config() for a in self.activations[:-1]],
            "output_activation": self.activations[-1].config(),
            "init": self.init if isinstance(self.init, str) else "custom",
            "seed": int(self.seed), "dtype": self.dtype.name,
            "member_offset": -1 if self.member_offset is None else int(self.member_offset),
        }

    def arrays(self):
        """``{"W0": (M, n_0, n_1), "b0": (M, n_1), "W1": ...}``: contiguous copies."""
        out = {}
        for i, (W, b) in enumerate(zip(self.weights, self.biases)):
            out[f"W{i}"] = np.ascontiguousarray(W)
            out[f"b{i}"] = np.ascontiguousarray(b)
        return out

    def set_arrays(self, arrays):
        """Overwrite all weights and biases from a dict shaped like :meth:`arrays`."""
        for i, (W, b) in enumerate(zip(self.weights, self.biases)):
            for key, dst in ((f"W{i}", W), (f"b{i}", b)):
                if key not in arrays:
                    raise InputError(f"parameter array {key!r} missing")
                src = np.asarray(arrays[key])
                if src.shape != dst.shape:
                    raise InputError(
                        f"parameter {key}: expected shape {dst.shape}, got {src.shape}")
                dst[...] = src
        return self

    @classmethod
    def from_arrays(cls, config, arrays):
        """Rebuild a network from :meth:`config` and :meth:`arrays` (no random draws kept)."""
        offset = int(config.get("member_offset", 0))
        hidden = config.get("activations", [])
        mlp = cls(config["layer_sizes"], config["n_members"],
                  activation=hidden if hidden else "identity",
                  output_activation=config.get("output_activation", "identity"),
                  init=config.get("init", "xavier_uniform") if config.get("init") != "custom"
                  else "xavier_uniform",
                  seed=int(config.get("seed", 0)), member_offset=max(offset, 0),
                  dtype=config.get("dtype", "float64"))
        if offset < 0:
            mlp.member_offset = None
        return mlp.set_arrays(arrays)

    # -- forward -----------------------------------------------------------------------
    def _check_input(self, x):
        x = np.asarray(x)
        if x.dtype != self.dtype:
            x = x.astype(self.dtype)
        ok = (x.ndim == 2 and x.shape[1] == self.sizes[0]) or (
            x.ndim == 3 and x.shape[0] == self.n_members and x.shape[2] == self.sizes[0])
        if not ok:
            raise InputError(
                f"input must have shape (B, {self.sizes[0]}) or ({self.n_members}, B, "
                f"{self.sizes[0]}), got {x.shape}")
        return x

    def new_cache(self, batch):
        """Preallocated buffers for batches of ``batch`` rows (reuse them between calls)."""
        return ForwardCache(self, int(batch))

    def forward(self, x, cache=None):
        """Forward pass keeping what backpropagation needs.

        ``x``: (B, n_0) shared by all members or (M, B, n_0). ``cache``: a :class:`ForwardCache`
        for B rows to reuse (its previous content is overwritten). Returns the cache; the output
        y is ``cache.output``, (M, B, n_L).
        """
        x = self._check_input(x)
        if cache is None or cache.shape != (self.n_members, x.shape[-2]):
            cache = ForwardCache(self, x.shape[-2])
        return self.forward_unchecked(x, cache)

    def forward_unchecked(self, x, cache):
        """:meth:`forward` without the input checks, for a training loop that prepared ``x``
        (the network's dtype, shape (B, n_0) or (M, B, n_0)) and ``cache`` itself."""
        cache.x = a = x
        for l, (W, b, act) in enumerate(zip(self.weights, self.biases, self.activations)):
            out = cache.a[l]
            z = out if cache.z[l] is None else cache.z[l]
            np.matmul(a, W, out=z)           # z_l = a_{l-1} W_l + b_l
            z += b[:, None, :]
            act(z, out=out)                  # a_l = f_l(z_l)   (in place when z is a)
            a = out
        return cache

    def predict(self, x):
        """Outputs of all members, (M, B, n_L), for x of shape (B, n_0) or (M, B, n_0).

        Hidden activations go to scratch buffers kept per thread and batch size: fresh arrays
        of a few hundred kB come from mmap and page-fault on every call, which made an
        8-member prediction on 100 rows ~60% slower. The returned array is always new.
        """
        x = self._check_input(x)
        bufs = self._scratch(x.shape[-2])
        a = x
        last = self.n_layers - 1
        for l, (W, b, act) in enumerate(zip(self.weights, self.biases, self.activations)):
            z = np.matmul(a, W, out=None if l == last else bufs[l])   # z_l = a_{l-1} W_l + b_l
            z += b[:, None, :]
            a = act(z, out=z)                                         # a_l = f_l(z_l)
        return a

    def _scratch(self, batch):
        key = (threading.get_ident(), batch)
        store = self.__dict__.setdefault("_scratch_store", {})
        bufs = store.get(key)
        if bufs is None:
            if len(store) >= 8:
                store.clear()
            bufs = [np.empty((self.n_members, batch, n), self.dtype) for n in self.sizes[1:-1]]
            store[key] = bufs
        return bufs

    __call__ = predict

    # -- backward passes (equations in pesnet.nn.backprop) -----------------------------
    def backward(self, cache, g_y, out=None):
        """Gradient of Σ g_y·y with respect to all parameters: (M, P) laid out like ``params``.

        ``g_y``: (M, B, n_L), e.g. ∂loss/∂y. ``out``: (M, P) array to write into (its padding
        must be zero). Use :meth:`layer_views` to read per-layer (dW, db).
        """
        return backprop.param_gradients(self, cache, g_y, out)

    def input_gradient(self, cache, g_y=None):
        """Σ_k g_y[k] ∂y_k/∂x: (M, B, n_0). ``g_y`` defaults to ones (scalar output → ∂y/∂x,
        e.g. ∂E_i/∂G_i for forces)."""
        return backprop.input_gradient(self, cache, self._default_gy(cache, g_y))

    def jvp(self, cache, u):
        """Directional derivative J u = Σ_i ∂y/∂x_i u_i along ``u`` (M, B, n_0): (M, B, n_L)."""
        return backprop.tangent_forward(self, cache, self._check_tangent(cache, u))[0][-1]

    def backward_with_tangent(self, cache, u, g_y=None, v=None, out=None):
        """Parameter gradient of  Φ = Σ_b g_y,b·y_b + Σ_b v_b·(∂y_b/∂x_b u_b)  in one pass.

        For force training with scalar output (v = 1): Φ's second term is
        S = Σ_b u_b·∂y_b/∂x_b, with u_b (M, B, n_0) the per-atom direction. ``g_y`` (M, B, n_L)
        defaults to zero, ``v`` (M, B, n_L) to ones. Returns (M, P) like :meth:`backward`.
        """
        u = self._check_tangent(cache, u)
        v = self._default_gy(cache, v)
        if g_y is None:
            g_y = np.zeros_like(cache.output)
        return backprop.param_gradients_with_tangent(self, cache, u, g_y, v, out)

    def _default_gy(self, cache, g):
        if g is None:
            return np.ones_like(cache.output)
        g = np.asarray(g, dtype=self.dtype)
        return np.broadcast_to(g, cache.output.shape)

    def _check_tangent(self, cache, u):
        u = np.asarray(u, dtype=self.dtype)
        want = (self.n_members, cache.shape[1], self.sizes[0])
        if u.shape != want and u.shape != want[1:]:
            raise InputError(f"tangent u must have shape {want} or {want[1:]}, got {u.shape}")
        return u

    def __repr__(self):
        acts = ",".join(a.name for a in self.activations)
        return (f"MLP(sizes={self.sizes}, n_members={self.n_members}, activations={acts}, "
                f"dtype={self.dtype.name})")
