"""Ensemble training speed: pesnet vs scikit-learn and PyTorch (CPU), in one run.

Task: 8 members, 64 inputs, hidden 64-64 tanh, scalar output, Adam (lr 1e-3), batch 256,
20,000 samples, 20 epochs. Printed per precision (float64, float32):

* pesnet ``train`` (member groups on worker threads, BLAS 1 thread) and single-threaded;
* scikit-learn ``MLPRegressor`` trained member after member (BLAS 1 and 2 threads);
* PyTorch CPU: a loop over 8 ``nn.Sequential`` models, and one batched model (``baddbmm``,
  fused Adam), each with 1 and 2 intra-op threads.

Times are the median wall time of one epoch of the whole 8-member ensemble (first epoch
dropped as warm-up; scikit-learn: sum over members of each member's median epoch, --quick
times 2 members and scales by 4). The
machine is shared, so each variant trains in 5 interleaved rounds of 4 epochs (20 epochs in
all) and keeps its fastest round; a round stops early (after 2 epochs) once it has used its
time budget, and a variant 5x slower than the best is measured once — a busy core slows
2-thread BLAS/OpenMP by 10x or more. Speedups compare pesnet with the fastest peer variant at
the same precision. Also printed: pesnet's matmul GFLOP/s against the machine's best
batched-matmul throughput at the same shapes, and the time of one 8-member prediction on 100
rows (the size of an MD step). The last line is JSON with the headline figures (float64;
``*_float32`` keys for float32). ``--quick``: one round of 3 epochs, 2 s per variant.

PyTorch is not a pesnet dependency; install it for this benchmark only:
``pip install torch==2.13.0`` (CPU wheel). Without it the torch rows are skipped.

OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (set machine-wide here) force a slower OpenBLAS kernel;
the script re-executes itself without them before NumPy is imported.
"""

import os
import sys

_BLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
if any(v in os.environ for v in _BLAS_VARS) and not os.environ.get("_PESNET_BENCH_CLEAN"):
    env = {k: v for k, v in os.environ.items() if k not in _BLAS_VARS}
    env["_PESNET_BENCH_CLEAN"] = "1"
    os.execve(sys.executable, [sys.executable, *sys.argv], env)

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_info, threadpool_limits  # noqa: E402

from pesnet.nn import MLP, train  # noqa: E402

M, N_IN, HIDDEN, BATCH, N_SAMPLES, LR = 8, 64, (64, 64), 256, 20_000, 1e-3
SIZES = (N_IN, *HIDDEN, 1)


def make_data(n, seed=0):
    """Smooth synthetic regression target on Gaussian inputs."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, N_IN))
    proj = rng.standard_normal((N_IN, 8)) / np.sqrt(N_IN)
    y = np.tanh(x @ proj).sum(axis=1) + 0.1 * np.sin(x[:, 0] * 3)
    return x, (y - y.mean()) / y.std()


class Budget:
    """Run ``epochs`` epochs, or stop early (after at least ``min_epochs``) once ``seconds``
    have passed: a variant that a busy machine slows 10x must not hold the run hostage."""

    def __init__(self, epochs, seconds, min_epochs=3):
        self.epochs, self.seconds, self.min_epochs = epochs, seconds, min(min_epochs, epochs)
        self.t0 = time.perf_counter()

    def done(self, n_epochs):
        return n_epochs >= self.epochs or (
            n_epochs >= self.min_epochs and time.perf_counter() - self.t0 > self.seconds)


def epoch_time(stamps):
    """Median epoch duration from time stamps (start first); the first epoch is dropped as
    warm-up when there are at least two."""
    d = np.diff(stamps)
    return float(np.median(d[1:] if len(d) > 1 else d))


def matmul_flops_per_epoch(n_samples):
    """Matmul FLOPs of one training epoch: forward, weight gradients, input gradients of
    every layer but the first (2 FLOPs per multiply-add)."""
    layers = list(zip(SIZES[:-1], SIZES[1:]))
    per_sample = 2 * (sum(i * o for i, o in layers) * 2 + sum(i * o for i, o in layers[1:]))
    return per_sample * n_samples * M


# --- pesnet ----------------------------------------------------------------------------------
def bench_pesnet(x, y, dtype, budget, n_threads):
    mlp = MLP(SIZES, M, activation="tanh", seed=0, dtype=dtype)
    stamps = [time.perf_counter()]

    def clock(log):
        stamps.append(time.perf_counter())
        return budget.done(log.epoch + 1)

    train(mlp, x, y, optimizer={"name": "adam", "learning_rate": LR}, epochs=budget.epochs,
          batch_size=BATCH, n_threads=n_threads, callbacks=[clock])
    return epoch_time(stamps), mlp


def bench_predict(mlp, rows=100, repeats=2000):
    """Best-of-5 mean time (µs) of ``mlp.predict`` on ``rows`` rows."""
    x = np.random.default_rng(1).standard_normal((rows, N_IN)).astype(mlp.dtype)
    best = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(repeats // 5):
            mlp.predict(x)
        best.append((time.perf_counter() - t) / (repeats // 5))
    return 1e6 * float(np.min(best))


# --- scikit-learn ------------------------------------------------------------------------------
def bench_sklearn(x, y, dtype, budget, blas_threads, members=M):
    """Member after member, one ``partial_fit`` (= one epoch) at a time; the ensemble's epoch
    time is the sum over members of each member's median epoch time (``members`` < 8: the
    mean over that many members, times 8)."""
    from sklearn.neural_network import MLPRegressor
    member_budget = Budget(budget.epochs, budget.seconds / members, budget.min_epochs)
    total = 0.0
    with threadpool_limits(blas_threads, user_api="blas"):
        for m in range(members):
            reg = MLPRegressor(hidden_layer_sizes=HIDDEN, activation="tanh", solver="adam",
                               learning_rate_init=LR, batch_size=BATCH, alpha=0.0,
                               shuffle=True, random_state=m)
            member_budget.t0 = time.perf_counter()
            stamps = [member_budget.t0]
            while not member_budget.done(len(stamps) - 1):
                reg.partial_fit(x, y)
                stamps.append(time.perf_counter())
            total += epoch_time(stamps)
    assert reg.coefs_[0].dtype == dtype, "scikit-learn did not keep the precision"
    return total * M / members


# --- PyTorch -----------------------------------------------------------------------------------
def _torch_epochs(torch, X, Y, budget, step):
    """Median epoch time of ``step`` over shuffled batches, first epoch dropped (as for
    pesnet). When a busy machine makes one epoch take many seconds, the round stops mid-epoch
    and the epoch time is extrapolated from the median batch time."""
    gen = torch.Generator().manual_seed(0)
    n_batches = -(-X.shape[0] // BATCH)
    durations, stamps = [], [time.perf_counter()]
    for _ in range(budget.epochs):
        perm = torch.randperm(X.shape[0], generator=gen)
        for i in range(0, X.shape[0], BATCH):
            idx = perm[i:i + BATCH]
            t = time.perf_counter()
            step(X[idx], Y[idx])
            durations.append(time.perf_counter() - t)
            if len(stamps) < 3 and len(durations) > 10 and \
                    time.perf_counter() - budget.t0 > budget.seconds:
                return float(np.median(durations[3:])) * n_batches
        stamps.append(time.perf_counter())
        if budget.done(len(stamps) - 1):
            break
    return epoch_time(stamps)


def bench_torch_loop(torch, x, y, dtype, budget, threads):
    torch.set_num_threads(threads)
    tdt = {np.float64: torch.float64, np.float32: torch.float32}[dtype]
    torch.manual_seed(0)
    models = [torch.nn.Sequential(torch.nn.Linear(N_IN, HIDDEN[0]), torch.nn.Tanh(),
                                  torch.nn.Linear(*HIDDEN), torch.nn.Tanh(),
                                  torch.nn.Linear(HIDDEN[1], 1)).to(tdt) for _ in range(M)]
    opts = [torch.optim.Adam(m.parameters(), lr=LR) for m in models]

    def step(xb, yb):
        for model, opt in zip(models, opts):
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.mse_loss(model(xb), yb).backward()
            opt.step()

    return _torch_epochs(torch, torch.from_numpy(x), torch.from_numpy(y[:, None]), budget, step)


def bench_torch_batched(torch, x, y, dtype, budget, threads):
    torch.set_num_threads(threads)
    tdt = {np.float64: torch.float64, np.float32: torch.float32}[dtype]
    torch.manual_seed(0)
    params = []
    for n_in, n_out in zip(SIZES[:-1], SIZES[1:]):
        bound = 1 / np.sqrt(n_in)
        W = (torch.rand(M, n_in, n_out, dtype=tdt) * 2 - 1) * bound
        b = torch.zeros(M, 1, n_out, dtype=tdt)
        params += [W.requires_grad_(), b.requires_grad_()]
    try:
        opt = torch.optim.Adam(params, lr=LR, fused=True)
    except (RuntimeError, TypeError):  # pragma: no cover - older torch
        opt = torch.optim.Adam(params, lr=LR, foreach=True)

    def forward(xb):
        h = xb.expand(M, *xb.shape)
        for k in range(0, len(params), 2):
            h = torch.baddbmm(params[k + 1], h, params[k])
            if k < len(params) - 2:
                h = torch.tanh(h)
        return h

    def step(xb, yb):
        opt.zero_grad(set_to_none=True)
        # sum over members of each member's mean loss: member gradients as if alone
        ((forward(xb) - yb) ** 2).mean(dim=(1, 2)).sum().backward()
        opt.step()

    return _torch_epochs(torch, torch.from_numpy(x), torch.from_numpy(y[:, None]), budget, step)


def torch_predict_us(torch, dtype, rows=100, repeats=1000):
    tdt = {np.float64: torch.float64, np.float32: torch.float32}[dtype]
    Ws = [torch.randn(M, i, o, dtype=tdt) for i, o in zip(SIZES[:-1], SIZES[1:])]
    bs = [torch.zeros(M, 1, o, dtype=tdt) for o in SIZES[1:]]
    x = torch.randn(rows, N_IN, dtype=tdt)
    best = []
    with torch.no_grad():
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(repeats // 5):
                h = x.expand(M, rows, N_IN)
                for k, (W, b) in enumerate(zip(Ws, bs)):
                    h = torch.baddbmm(b, h, W)
                    if k < len(Ws) - 1:
                        h = torch.tanh(h)
            best.append((time.perf_counter() - t) / (repeats // 5))
    return 1e6 * float(np.min(best))


# --- machine throughput --------------------------------------------------------------------
def batched_matmul_peak(dtype, repeats=300):
    """GFLOP/s of (8,256,64)@(8,64,64) on this machine: one call with 1 or 2 BLAS threads, and
    two Python threads with 4 members and 1 BLAS thread each (what pesnet does)."""
    from concurrent.futures import ThreadPoolExecutor
    rng = np.random.default_rng(0)
    a = rng.standard_normal((M, BATCH, HIDDEN[0])).astype(dtype)
    w = rng.standard_normal((M, HIDDEN[0], HIDDEN[1])).astype(dtype)
    out = np.empty((M, BATCH, HIDDEN[1]), dtype)
    flops = 2 * M * BATCH * HIDDEN[0] * HIDDEN[1]

    def run(sl):
        for _ in range(repeats):
            np.matmul(a[sl], w[sl], out=out[sl])

    results = {}
    for threads in (1, 2):
        with threadpool_limits(threads, user_api="blas"):
            run(slice(None))
            t = time.perf_counter()
            run(slice(None))
            results[f"1 call, BLAS {threads}"] = flops * repeats / (time.perf_counter() - t)
    with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(2) as pool:
        halves = [slice(0, M // 2), slice(M // 2, M)]
        list(pool.map(run, halves))
        t = time.perf_counter()
        list(pool.map(run, halves))
        results["2 threads x 4 members, BLAS 1"] = flops * repeats / (time.perf_counter() - t)
    return {k: v / 1e9 for k, v in results.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="3 epochs, 2 s per variant, one round (well under a minute)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per variant and round")
    parser.add_argument("--rounds", type=int, default=None,
                        help="interleaved rounds; each variant keeps its fastest round")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds per variant and round before it stops early")
    args = parser.parse_args()
    # full: 5 rounds x 4 epochs = the task's 20 epochs per variant; quick: one short round
    epochs = args.epochs or (3 if args.quick else 4)
    rounds = args.rounds or (1 if args.quick else 5)
    seconds = args.budget or (2.0 if args.quick else 6.0)
    try:
        import torch
    except ImportError:
        torch = None

    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    print("BLAS:", ", ".join(f"{i['internal_api']} {i.get('version')} kernel="
                             f"{i.get('architecture')} threads={i['num_threads']}" for i in blas))
    print(f"cores: {len(os.sched_getaffinity(0))};  numpy {np.__version__};  torch "
          f"{torch.__version__ if torch else 'not installed (pip install torch==2.13.0)'};  "
          f"load average at start: {os.getloadavg()[0]:.2f}")
    print(f"task: {M} members, {SIZES} tanh, Adam lr {LR}, batch {BATCH}, {N_SAMPLES} samples; "
          f"up to {epochs} epochs or {seconds:g} s per variant, best of {rounds} interleaved "
          f"round(s); ms per ensemble epoch\n")

    x64, y64 = make_data(N_SAMPLES)
    summary = {}
    header = f"{'precision':9}  {'implementation':44}  {'ms/epoch':>9}  {'pesnet is':>10}"
    print(header)
    print("-" * len(header))
    for dtype in (np.float64, np.float32):
        x, y = x64.astype(dtype), y64.astype(dtype)
        variants = [("pesnet", "pesnet (member groups on 2 threads)",
                     lambda b: bench_pesnet(x, y, dtype, b, None)[0]),
                    ("pesnet", "pesnet (1 thread)", lambda b: bench_pesnet(x, y, dtype, b, 1)[0])]
        for bt in (1, 2):
            variants.append(("sklearn", f"scikit-learn MLPRegressor x8 (BLAS {bt})",
                             lambda b, bt=bt: bench_sklearn(x, y, dtype, b, bt,
                                                            2 if args.quick else M)))
        if torch is not None:
            for th in (1, 2):
                variants.append(("torch", f"torch loop over 8 models ({th} thread(s))",
                                 lambda b, th=th: bench_torch_loop(torch, x, y, dtype, b, th)))
                variants.append(("torch", f"torch batched bmm, fused Adam ({th} thread(s))",
                                 lambda b, th=th: bench_torch_batched(torch, x, y, dtype, b, th)))
        times = [np.inf] * len(variants)
        peak = {}
        for _ in range(rounds):
            for i, (_, _, fn) in enumerate(variants):
                # a variant 5x slower than the best so far has made its point: measured once
                if times[i] < np.inf and times[i] > 5 * min(times):
                    continue
                times[i] = min(times[i], fn(Budget(epochs, seconds, 2)))
            for k, v in batched_matmul_peak(dtype).items():
                peak[k] = max(peak.get(k, 0.0), v)
        t_pes = min(t for (kind, _, _), t in zip(variants, times) if kind == "pesnet")
        for (kind, name, _), t in zip(variants, times):
            ratio = "" if kind == "pesnet" else f"{t / t_pes:8.2f}x"
            print(f"{np.dtype(dtype).name:9}  {name:44}  {1e3 * t:9.1f}  {ratio:>10}")
        best = {k: min(t for (kk, _, _), t in zip(variants, times) if kk == k)
                for k in ("sklearn", "torch") if any(v[0] == k for v in variants)}
        achieved = matmul_flops_per_epoch(N_SAMPLES) / t_pes / 1e9
        mlp = bench_pesnet(x, y, dtype, Budget(1, 0), 1)[1]
        pred_us = bench_predict(mlp)
        print(f"{'':9}  pesnet matmul throughput {achieved:.1f} GFLOP/s = "
              f"{100 * achieved / max(peak.values()):.0f}% of the machine's best batched matmul "
              f"(8,256,64)@(8,64,64) [GFLOP/s: " +
              ", ".join(f"{k}: {v:.1f}" for k, v in peak.items()) + "]")
        line = f"{'':9}  predict, 8 members x 100 rows: pesnet {pred_us:.0f} us"
        if torch is not None:
            torch.set_num_threads(1)
            line += f", torch bmm (1 thread) {torch_predict_us(torch, dtype):.0f} us"
        print(line + "\n")
        suffix = "" if dtype == np.float64 else "_float32"
        summary["speedup_vs_torch" + suffix] = (round(best["torch"] / t_pes, 2)
                                                if "torch" in best else None)
        summary["speedup_vs_sklearn" + suffix] = round(best["sklearn"] / t_pes, 2)
        summary["fraction_of_matmul_peak" + suffix] = round(achieved / max(peak.values()), 3)
        summary["predict_us_100rows" + suffix] = round(pred_us, 1)
        summary["pesnet_ms_per_epoch" + suffix] = round(1e3 * t_pes, 1)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
