#!/usr/bin/env python3
"""Seconds per training epoch, fastscratch vs PyTorch vs tf.keras, measured in one run -- with thread counts.

    python scripts/bench_epoch.py                                    # Fashion-MNIST, batch 32/128/512/full
    python scripts/bench_epoch.py --threads auto,1                   # also every framework on one thread
    python scripts/bench_epoch.py --frameworks fastscratch-numba --threads 1,2   # the thread choice

A thin front end over ``fastscratch.bench`` (the one workload definition, which
``fastscratch bench``, asv and pytest-benchmark also use).  What it adds: runs at
several thread counts (``auto`` is each framework's own choice; fastscratch's is
measured per batch size at the start of ``fit``), the SGEMM rate at the start and
at the end of the run on the default threads and on one (on a shared machine the
rate moves; the best seen is the machine's), the load average, and ratios of
each result to the *fastest* PyTorch and tf.keras result at the same batch size.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import math
import os
import sys

from fastscratch import bench, training


def _batch_sizes(text: str) -> list[int | None]:
    return [None if part.strip() in ("full", "none", "0") else int(part) for part in text.split(",")]


def _threads(text: str) -> list[int | None]:
    return [None if t in ("auto", "default") else int(t) for t in text.split(",")]


@contextlib.contextmanager
def _thread_count(threads: int | None):
    """BLAS and OpenMP pools (NumPy, SciPy, PyTorch) limited to ``threads``; fastscratch told
    not to choose its own.  TensorFlow's pools are sized at its start-up and do not follow."""
    if threads is None:
        yield
        return
    from threadpoolctl import threadpool_limits
    saved = training.THREADS_OVERRIDE
    training.THREADS_OVERRIDE = threads
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        training.THREADS_OVERRIDE = saved


def _sgemm(seconds: float) -> dict[str, float]:
    """SGEMM (128,784)x(784,128) GFLOP/s medians with the default threads and with one."""
    from threadpoolctl import threadpool_limits
    default = bench.sgemm_rate(seconds=seconds)
    with threadpool_limits(limits=1):
        single = bench.sgemm_rate(seconds=seconds)
    return {"default": default[0], "default_min": default[1], "default_max": default[2],
            "one_thread": single[0], "one_thread_min": single[1], "one_thread_max": single[2]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="fashion-mnist", help="fashion-mnist, mnist-sample, digits, auto")
    parser.add_argument("--batch-sizes", default="32,128,512,full", type=_batch_sizes)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per workload, after --warmup")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--frameworks", default=",".join(bench.FRAMEWORKS))
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--optimizer", default="sgd", choices=["sgd", "momentum", "adam"])
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--threads", default="auto", type=_threads,
                        help="comma-separated thread counts to run each workload with; 'auto': the framework's own")
    parser.add_argument("--sgemm-seconds", type=float, default=1.0)
    parser.add_argument("--json", default=None, help="write every result record here")
    args = parser.parse_args(argv)
    frameworks = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    for f in frameworks:
        if f not in bench.FRAMEWORKS:
            parser.error(f"unknown framework {f!r}; expected some of {', '.join(bench.FRAMEWORKS)}")

    dataset, data = bench.load_data(args.dataset, args.dtype)
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"fastscratch epoch benchmark, {when}, {os.cpu_count()} CPUs, load average {os.getloadavg()}")
    print(f"{dataset}: {len(data[0])} training samples, {data[0].shape[1]}-128-64-{int(data[1].max()) + 1}, "
          f"{args.dtype}, {args.optimizer} lr {args.lr}; {args.epochs} timed epochs after {args.warmup} warm-up")
    start = _sgemm(args.sgemm_seconds)
    print(f"SGEMM (128,784)x(784,128): {start['default']:.1f} GFLOP/s on the default threads "
          f"[{start['default_min']:.1f}-{start['default_max']:.1f}], {start['one_thread']:.1f} on one", flush=True)

    results: list[tuple[int | None, bench.Result]] = []
    for batch in args.batch_sizes:
        for threads in args.threads:
            for framework in frameworks:
                workload = bench.Workload(framework=framework, batch_size=batch, dataset=dataset, dtype=args.dtype,
                                          optimizer=args.optimizer, lr=args.lr)
                with _thread_count(threads):
                    result = bench.run(workload, epochs=args.epochs, warmup=args.warmup, data=data)
                results.append((threads, result))
                print(f"  {workload.label} threads {threads or 'auto'}: {result.status}"
                      + (f", median {result.median_seconds:.3f} s" if result.ok else ""), file=sys.stderr, flush=True)

    end = _sgemm(args.sgemm_seconds)
    best = max(start["default"], start["one_thread"], end["default"], end["one_thread"])
    print(f"SGEMM at the end: {end['default']:.1f} on the default threads, {end['one_thread']:.1f} on one; "
          f"the machine's rate (best seen): {best:.1f} GFLOP/s; load average {os.getloadavg()}")
    for threads in args.threads:
        print(f"\nthreads: {threads or 'auto (each framework its own)'}")
        group = [r for t, r in results if t == threads]
        print("\n".join(bench.format_table(group, (best, best, best))))
    fastest: dict[tuple[int | None, str], float] = {}
    for _, r in results:
        if r.ok and r.workload.framework in ("torch", "tf.keras"):
            key = (r.workload.batch_size, r.workload.framework)
            fastest[key] = min(fastest.get(key, math.inf), r.median_seconds)
    print("\nratios to the fastest PyTorch / tf.keras run at the same batch size (any thread count):")
    for threads, r in results:
        if r.ok and r.workload.framework.startswith("fastscratch"):
            b = r.workload.batch_size
            vs = {name: r.median_seconds / fastest[(b, name)] if (b, name) in fastest else math.nan
                  for name in ("torch", "tf.keras")}
            print(f"  {r.workload.framework:<18} batch {b or 'full':>5} threads {threads or 'auto':>4}: "
                  f"{r.median_seconds:.3f} s [{r.min_seconds:.3f}-{r.max_seconds:.3f}], "
                  f"x torch {vs['torch']:.2f}, x keras {vs['tf.keras']:.2f}, {r.gflops / best:.0%} of SGEMM, "
                  f"compile {r.compile_seconds:.2f} s; {r.threads}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"date": when, "sgemm_start": start, "sgemm_end": end, "sgemm_best": best,
                       "results": [dict(dataclasses.asdict(r), threads_asked=t) for t, r in results]},
                      f, indent=1, default=str)
        print(f"wrote {args.json}")
    return 0 if all(r.ok or r.status.startswith("skipped") for _, r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
