#!/usr/bin/env python3
"""Where a training step's time can come from: each matrix product of one step, timed alone.

    python scripts/step_shapes.py                               # 784-128-64-10, batch 32/128/512/4096
    python scripts/step_shapes.py --sizes 784,1024,1024,10 --batch-sizes 128
    python scripts/step_shapes.py --engines openblas1,openblas2,jax --json out/shapes.json

A step of an ``L``-layer network runs ``3L - 1`` products: ``L`` forward (``A @ W``), ``L - 1``
backward (``delta @ W.T``) and ``L`` weight gradients (``A.T @ delta``).  Each is timed here on
its own, with each engine the step could use:

- ``openblas1`` / ``openblas2``: NumPy's ``matmul(out=)`` (the BLAS NumPy links, OpenBLAS here)
  with BLAS on 1 / 2 threads (threadpoolctl): what the Numba epoch calls (one thread per part);
- ``jax``: the same product jitted by JAX on the CPU, as XLA compiles it by default (current XLA
  hands CPU dots to YNNPACK); ``jax-noynn``: the same with ``--xla_cpu_experimental_ynn_fusion_type=``
  emptied in ``XLA_FLAGS`` (XLA's own or Eigen's dot), run in a child process since XLA reads its
  flags once;
- ``blis``: BLIS's single-threaded SGEMM through the ``blis`` package, where it is installed.

JAX's per-call dispatch (several microseconds) would swamp a small product, so each engine runs
``reps`` products back to back inside one call (a ``lax.fori_loop`` for JAX, whose input depends
on the previous product so XLA cannot hoist it; a Python loop of ``matmul(out=)`` for the
others) and the time per product is the call's time over ``reps``.  Engines are measured in
interleaved rounds; the table gives the median [min-max] microseconds per product and GFLOP/s,
and per batch size the sum over the step's products: the step's GEMM floor under each engine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

ENGINES = ("openblas1", "openblas2", "jax", "jax-noynn", "blis")


def step_products(sizes: list[int], rows: int) -> list[tuple[str, tuple[int, int, int], str]]:
    """``(label, (m, k, n), kind)`` of each product of one step on ``rows`` rows, in step order;
    ``kind``: ``"nn"`` (``A @ W``), ``"nt"`` (``delta @ W.T``) or ``"tn"`` (``A.T @ delta``)."""
    layers = list(zip(sizes[:-1], sizes[1:]))
    products = [(f"forward {l + 1}", (rows, n_in, n_out), "nn") for l, (n_in, n_out) in enumerate(layers)]
    products += [(f"backward {l + 1}", (rows, n_out, n_in), "nt") for l, (n_in, n_out) in reversed(
        list(enumerate(layers))) if l > 0]
    products += [(f"weights {l + 1}", (n_in, rows, n_out), "tn") for l, (n_in, n_out) in enumerate(layers)]
    return products


def operands(shape: tuple[int, int, int], kind: str, rng: np.random.Generator):
    """Operands laid out as the step stores them (row-major activations and weights)."""
    m, k, n = shape
    if kind == "nn":
        a, b = rng.random((m, k), np.float32), rng.random((k, n), np.float32)
    elif kind == "nt":  # delta (m, k) @ W.T, W stored (n, k)
        a, b = rng.random((m, k), np.float32), rng.random((n, k), np.float32)
    else:  # A.T @ delta: A stored (k, m), delta (k, n)
        a, b = rng.random((k, m), np.float32), rng.random((k, n), np.float32)
    return a, b


def numpy_runner(a, b, kind, threads):
    x = a.T if kind == "tn" else a
    y = b.T if kind == "nt" else b
    out = np.empty((x.shape[0], y.shape[1]), np.float32)

    def run(reps: int) -> float:
        with threadpool_limits(threads, user_api="blas"):
            start = time.perf_counter()
            for _ in range(reps):
                np.matmul(x, y, out=out)
            return time.perf_counter() - start
    return run


def blis_runner(a, b, kind):
    from blis.py import gemm  # noqa: PLC0415 (optional)
    m = a.shape[1] if kind == "tn" else a.shape[0]
    n = b.shape[0] if kind == "nt" else b.shape[1]
    out = np.empty((m, n), np.float32)

    def run(reps: int) -> float:
        start = time.perf_counter()
        for _ in range(reps):
            gemm(a, b, out=out, trans1=kind == "tn", trans2=kind == "nt", beta=0.0)
        return time.perf_counter() - start
    return run


def jax_runner(a, b, kind, reps):
    import jax  # noqa: PLC0415 (optional)
    import jax.numpy as jnp  # noqa: PLC0415
    from jax import lax  # noqa: PLC0415

    dims = {"nn": (((1,), (0,)), ((), ())), "nt": (((1,), (1,)), ((), ())), "tn": (((0,), (0,)), ((), ()))}[kind]

    @jax.jit
    def many(x, y):
        def body(_, carry):
            # the next input depends on this product, so the loop cannot be hoisted
            out = lax.dot_general(x + carry, y, dims, preferred_element_type=jnp.float32)
            return out[0, 0] * 1e-30
        return lax.fori_loop(0, reps, body, jnp.float32(0))

    xa, yb = jax.device_put(a), jax.device_put(b)
    many(xa, yb).block_until_ready()  # compile

    def run(_reps: int) -> float:
        start = time.perf_counter()
        many(xa, yb).block_until_ready()
        return time.perf_counter() - start
    return run


def measure(sizes, batch_sizes, engines, rounds, target_ms, seed=0):
    """``{(rows, label): {engine: [seconds per product, ...]}}`` and the shapes."""
    rng = np.random.default_rng(seed)
    results, shapes = {}, {}
    for rows in batch_sizes:
        for label, shape, kind in step_products(sizes, rows):
            a, b = operands(shape, kind, rng)
            flops = 2 * shape[0] * shape[1] * shape[2]
            reps = max(3, int(target_ms * 1e-3 * 50e9 / flops))  # about target_ms at 50 GFLOP/s
            runners = {}
            for engine in engines:
                if engine.startswith("openblas"):
                    runners[engine] = numpy_runner(a, b, kind, int(engine[-1]))
                elif engine == "blis":
                    runners[engine] = blis_runner(a, b, kind)
                elif engine == "jax":
                    runners[engine] = jax_runner(a, b, kind, reps)
            for run in runners.values():
                run(max(1, reps // 4))  # warm
            times = {engine: [] for engine in runners}
            for r in range(rounds):
                order = list(runners) if r % 2 == 0 else list(reversed(runners))
                for engine in order:
                    times[engine].append(runners[engine](reps) / reps)
            results[(rows, label)] = times
            shapes[(rows, label)] = (shape, kind, flops)
    return results, shapes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="784,128,64,10", help="layer sizes (default: 784,128,64,10)")
    parser.add_argument("--batch-sizes", default="32,128,512,4096",
                        help="rows per step (4096: a full batch's pass; default: 32,128,512,4096)")
    parser.add_argument("--engines", default="openblas1,openblas2,jax,jax-noynn,blis",
                        help=f"comma list of {', '.join(ENGINES)} (missing ones are skipped, said why)")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default: 7)")
    parser.add_argument("--target-ms", type=float, default=20.0, help="about this long per timed call (default: 20)")
    parser.add_argument("--json", help="write the measurements to this file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = sorted(set(engines) - set(ENGINES))
    if unknown:
        parser.error(f"unknown engine(s) {', '.join(unknown)}; expected some of {', '.join(ENGINES)}")
    here = [e for e in engines if e != "jax-noynn"]
    if "blis" in here:
        try:
            import blis.py  # noqa: F401, PLC0415
        except ImportError:
            print("blis: skipped (pip install blis)", file=sys.stderr)
            here.remove("blis")
    if "jax" in here:
        try:
            import jax  # noqa: F401, PLC0415
        except ImportError:
            print("jax: skipped (pip install jax)", file=sys.stderr)
            here.remove("jax")
    results, shapes = measure(sizes, batch_sizes, here, args.rounds, args.target_ms)
    table = {f"{rows}|{label}": times for (rows, label), times in results.items()}
    if args.child:
        json.dump(table, sys.stdout)
        return 0
    if "jax-noynn" in engines:
        env = dict(os.environ)
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_experimental_ynn_fusion_type=").strip()
        child = subprocess.run([sys.executable, __file__, "--child", "--sizes", args.sizes, "--batch-sizes",
                                args.batch_sizes, "--engines", "jax", "--rounds", str(args.rounds),
                                "--target-ms", str(args.target_ms)], env=env, capture_output=True, text=True)
        if child.returncode:
            print(f"jax-noynn: skipped ({child.stderr.strip().splitlines()[-1:]})", file=sys.stderr)
        else:
            for key, times in json.loads(child.stdout).items():
                table[key]["jax-noynn"] = times["jax"]
    shown = [e for e in engines if any(e in t for t in table.values())]
    blas = "; ".join(f"{i['internal_api']} {i['version']} ({i.get('architecture')}), {i['num_threads']} threads"
                     for i in threadpool_info() if i["user_api"] == "blas")
    versions = {"numpy": np.__version__}
    for name in ("jax", "blis"):
        try:
            versions[name] = __import__(name).__version__
        except (ImportError, AttributeError):
            pass
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor()) if os.path.exists("/proc/cpuinfo") else platform.processor()
    print(f"`python scripts/step_shapes.py {' '.join(argv if argv is not None else sys.argv[1:])}`, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {cpu}, {os.cpu_count()} cores; BLAS: {blas}; "
          + ", ".join(f"{k} {v}" for k, v in versions.items()) + f"; {args.rounds} interleaved rounds.\n")
    print("| rows | product | m x k x n | " + " | ".join(f"{e} us [min-max] (GFLOP/s)" for e in shown) + " |")
    print("| --- | --- | --- | " + " | ".join("---" for _ in shown) + " |")
    totals: dict[int, dict[str, float]] = {}
    for key, times in table.items():
        rows_text, label = key.split("|")
        rows = int(rows_text)
        shape, kind, flops = shapes[(rows, label)]
        cells = []
        for engine in shown:
            samples = times.get(engine)
            if not samples:
                cells.append("-")
                continue
            med = statistics.median(samples)
            totals.setdefault(rows, {}).setdefault(engine, 0.0)
            totals[rows][engine] += med
            cells.append(f"{med * 1e6:.1f} [{min(samples) * 1e6:.1f}-{max(samples) * 1e6:.1f}] ({flops / med / 1e9:.0f})")
        print(f"| {rows} | {label} ({kind}) | {shape[0]}x{shape[1]}x{shape[2]} | " + " | ".join(cells) + " |")
    print("\nThe step's products summed (medians), microseconds per step and s per 60,000-sample epoch:\n")
    print("| rows | " + " | ".join(shown) + " |")
    print("| --- | " + " | ".join("---" for _ in shown) + " |")
    for rows, per_engine in totals.items():
        steps = 60000 / rows
        print(f"| {rows} | " + " | ".join(
            f"{per_engine[e] * 1e6:.0f} us, {per_engine[e] * steps:.3f} s" if e in per_engine else "-" for e in shown) + " |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"sizes": sizes, "table": table}, handle, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
