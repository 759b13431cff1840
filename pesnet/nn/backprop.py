"""Hand-written backward passes of :class:`pesnet.nn.mlp.MLP`.

Forward pass (layer l = 1..L, member axis first, batch rows b)::

    z_l = a_{l-1} W_l + b_l,    a_l = f_l(z_l),    a_0 = x,   y = a_L

Three reverse-mode products are provided, each checked against finite differences in
``tests/test_nn_backprop.py``:

* :func:`param_gradients`  — ∂Φ/∂(W, b) for Φ = Σ g_y·y (training on energies);
* :func:`input_gradient`   — Σ_k g_k ∂y_k/∂x (forces: ∂E_i/∂G_i);
* :func:`param_gradients_with_tangent` — ∂Φ/∂(W, b) for Φ = Σ g_y·y + Σ v·(J u), J = ∂y/∂x,
  a forward tangent pass along u followed by a reverse pass that uses f'' (training on forces).

Every function works on all members at once through batched matmuls; ``x`` may be shared,
(B, n_0), or per member, (M, B, n_0). Gradients come back as one (M, P) array laid out like
``mlp.params``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["param_gradients", "input_gradient", "tangent_forward",
           "param_gradients_with_tangent"]


def _T(a):
    """Matrix transpose of the last two axes (a view)."""
    return a.swapaxes(-1, -2)


def param_gradients(mlp, cache, g_y, out=None):
    """Backpropagation: ∂Φ/∂W_l, ∂Φ/∂b_l for Φ = Σ_{m,b,k} g_y[m,b,k] y[m,b,k].

    ``g_y``: (M, B, n_L). ``out``: (M, P) array to fill (padding must be zero) or None.
    Uses the cache's scratch buffers, so no temporaries are allocated in the loop. ``g_y`` is
    not modified unless it IS ``cache.dy`` (the trainer's loss-gradient buffer).
    """
    grads = np.zeros_like(mlp.params) if out is None else out
    gW, gb = mlp.layer_views(grads)
    L = mlp.n_layers
    acts = mlp.activations

    # δ_L = g_y ⊙ f_L'(z_L)   (the output activation is usually the identity: δ_L = g_y)
    if acts[-1].name == "identity":
        delta = g_y
    else:
        delta = g_y if g_y is cache.dy else cache.delta[-1]
        if delta is not g_y:
            np.copyto(delta, g_y)
        acts[-1].mul_derivative(delta, cache.z[-1], cache.a[-1], cache.tmp[-1])

    for l in range(L - 1, -1, -1):
        a_prev = cache.x if l == 0 else cache.a[l - 1]
        # ∂Φ/∂W_l = a_{l-1}ᵀ δ_l      (M, n_{l-1}, n_l): one batched matmul
        np.matmul(_T(a_prev), delta, out=gW[l])
        # ∂Φ/∂b_l = Σ_b δ_l = 1ᵀ δ_l   (M, n_l); a matmul with ones beats np.sum(axis=1)
        np.matmul(cache.ones, delta, out=gb[l][:, None, :])
        if l == 0:
            break
        # δ_{l-1} = (δ_l W_lᵀ) ⊙ f'_{l-1}(z_{l-1})   (M, B, n_{l-1}), in place
        nxt = cache.delta[l - 1]
        if delta.shape[-1] == 1:   # outer product: broadcasting is ~2x faster than matmul
            np.multiply(delta, _T(mlp.weights[l]), out=nxt)
        else:
            np.matmul(delta, _T(mlp.weights[l]), out=nxt)
        acts[l - 1].mul_derivative(nxt, cache.z[l - 1], cache.a[l - 1], cache.tmp[l - 1])
        delta = nxt
    return grads


def input_gradient(mlp, cache, g_y):
    """Vector–Jacobian product with respect to the input: Σ_k g_y[k] ∂y_k/∂x, (M, B, n_0).

    Recursion:  g_L = g_y;   δ_l = g_l ⊙ f_l'(z_l);   g_{l-1} = δ_l W_lᵀ;   result g_0.
    """
    g = g_y
    for l in range(mlp.n_layers - 1, -1, -1):
        act = mlp.activations[l]
        delta = g * act.derivative(cache.z[l], cache.a[l])     # δ_l = g_l ⊙ f_l'(z_l)
        g = np.matmul(delta, _T(mlp.weights[l]))               # g_{l-1} = δ_l W_lᵀ
    return g


def tangent_forward(mlp, cache, u):
    """Forward-mode pass along direction ``u`` (M, B, n_0) or (B, n_0).

    Recursion:  ȧ_0 = u;   ż_l = ȧ_{l-1} W_l;   ȧ_l = f_l'(z_l) ⊙ ż_l;   J u = ȧ_L.
    Returns (ȧ list [ȧ_1..ȧ_L], ż list, f' list), each entry (M, B, n_l).
    """
    adots, zdots, fprimes = [], [], []
    ad = u
    for l, (W, act) in enumerate(zip(mlp.weights, mlp.activations)):
        zd = np.matmul(ad, W)                                  # ż_l = ȧ_{l-1} W_l
        fp = act.derivative(cache.z[l], cache.a[l])
        ad = fp * zd                                           # ȧ_l = f'(z_l) ⊙ ż_l
        adots.append(ad)
        zdots.append(zd)
        fprimes.append(fp)
    return adots, zdots, fprimes


def param_gradients_with_tangent(mlp, cache, u, g_y, v, out=None):
    """∂Φ/∂(W, b) for Φ = Σ g_y·y + Σ v·ȧ_L, where ȧ_L = J u (see :func:`tangent_forward`).

    Reverse pass through the primal and tangent graphs together. With adjoints
    ā_l = ∂Φ/∂a_l, ǡ_l = ∂Φ/∂ȧ_l, starting from ā_L = g_y, ǡ_L = v::

        ż̄_l = f'(z_l) ⊙ ǡ_l                                (tangent pre-activation)
        z̄_l = f'(z_l) ⊙ ā_l + f''(z_l) ⊙ ż_l ⊙ ǡ_l          (primal pre-activation)
        ∂Φ/∂W_l = a_{l-1}ᵀ z̄_l + ȧ_{l-1}ᵀ ż̄_l,    ∂Φ/∂b_l = Σ_b z̄_l
        ā_{l-1} = z̄_l W_lᵀ,    ǡ_{l-1} = ż̄_l W_lᵀ

    For scalar output and v = 1 the second term of Φ is S = Σ_b u_b·∂y_b/∂x_b, the quantity
    whose weight gradient trains a potential on forces.
    """
    grads = np.zeros_like(mlp.params) if out is None else out
    gW, gb = mlp.layer_views(grads)
    adots, zdots, fprimes = tangent_forward(mlp, cache, u)
    abar, adbar = g_y, v
    for l in range(mlp.n_layers - 1, -1, -1):
        act = mlp.activations[l]
        f2 = act.second_derivative(cache.z[l], cache.a[l])
        zdbar = fprimes[l] * adbar                             # ż̄_l
        zbar = fprimes[l] * abar + f2 * zdots[l] * adbar       # z̄_l
        a_prev = cache.x if l == 0 else cache.a[l - 1]
        ad_prev = u if l == 0 else adots[l - 1]
        np.matmul(_T(a_prev), zbar, out=gW[l])                 # a_{l-1}ᵀ z̄_l
        gW[l] += np.matmul(_T(ad_prev), zdbar)                 #   + ȧ_{l-1}ᵀ ż̄_l
        np.sum(zbar, axis=1, out=gb[l])                        # Σ_b z̄_l
        if l > 0:
            abar = np.matmul(zbar, _T(mlp.weights[l]))         # ā_{l-1}
            adbar = np.matmul(zdbar, _T(mlp.weights[l]))       # ǡ_{l-1}
    return grads
