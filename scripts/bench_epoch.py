#!/usr/bin/env python3
"""Seconds per training epoch, fastscratch vs PyTorch vs tf.keras, measured in one run.

    python scripts/bench_epoch.py                                   # Fashion-MNIST, batch 32/128/512/full
    python scripts/bench_epoch.py --dataset digits --epochs 3       # quick, no download
    python scripts/bench_epoch.py --threads 1,2 --frameworks fastscratch-numba   # the thread choice

Prints the machine, BLAS libraries and thread counts, the SGEMM rate at
(128,784)x(784,128), then one row per framework and batch size: median s/epoch
and min-max over the timed epochs (after warm-up epochs), samples/s, GFLOP/s,
the fraction of the SGEMM rate, and ratios to PyTorch and tf.keras at the same
batch size.  ``--json`` writes every result record.  The workload definition
and timing live in ``fastscratch.bench``; this is only a front end.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys

from fastscratch import bench


def _batch_sizes(text: str) -> list[int | None]:
    sizes: list[int | None] = []
    for part in text.split(","):
        part = part.strip()
        sizes.append(None if part in ("full", "none", "0") else int(part))
    return sizes


def _threads(text: str | None) -> list[int | None]:
    if not text:
        return [None]
    return [None if t in ("auto", "default") else int(t) for t in text.split(",")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="fashion-mnist", choices=bench.DATASETS)
    parser.add_argument("--batch-sizes", default="32,128,512,full", type=_batch_sizes,
                        help="comma-separated; 'full' is full-batch gradient descent")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per workload (after warm-up)")
    parser.add_argument("--warmup-epochs", type=int, default=1)
    parser.add_argument("--frameworks", default=",".join(bench.FRAMEWORKS),
                        help=f"comma-separated, from {', '.join(bench.FRAMEWORKS)}")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--optimizer", default="sgd", choices=["sgd", "momentum", "adam"])
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--architecture", default=None, help="e.g. 784,128,64,10 (default: input-128-64-10)")
    parser.add_argument("--threads", default=None,
                        help="comma-separated BLAS/framework thread counts to try ('auto': each framework's own)")
    parser.add_argument("--sgemm-seconds", type=float, default=1.0, help="time spent measuring the SGEMM rate")
    parser.add_argument("--json", default=None, help="write the result records to this file")
    args = parser.parse_args(argv)

    frameworks = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    for f in frameworks:
        if f not in bench.FRAMEWORKS:
            parser.error(f"unknown framework {f!r}; expected some of {bench.FRAMEWORKS}")
    data = bench.load_data(args.dataset)
    n_features = data[0].shape[1]
    architecture = (tuple(int(s) for s in args.architecture.split(",")) if args.architecture
                    else (n_features, 128, 64, 10))

    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"fastscratch epoch benchmark, {when}")
    print(f"machine: {bench.machine()}")
    print(f"data: {args.dataset}, {data[0].shape[0]} training samples; architecture {'-'.join(map(str, architecture))}, "
          f"{args.dtype}, {args.optimizer} lr {args.lr}; {args.epochs} timed epochs after {args.warmup_epochs} warm-up; "
          f"{bench.flops_per_sample(architecture):,} FLOP/sample")
    sgemm = bench.sgemm_rate(seconds=args.sgemm_seconds)
    sgemm_1 = bench.sgemm_rate(seconds=args.sgemm_seconds, threads=1)
    # the machine's rate is the better of the two: on a busy machine a second BLAS thread
    # can make a small GEMM far slower, and that is not the hardware's limit
    best = max(sgemm["gflops"], sgemm_1["gflops"])
    print(f"SGEMM (128,784)x(784,128), NumPy matmul: {sgemm['gflops']:.1f} GFLOP/s "
          f"(min-max {sgemm['gflops_min']:.1f}-{sgemm['gflops_max']:.1f}) with the default threads, "
          f"{sgemm_1['gflops']:.1f} ({sgemm_1['gflops_min']:.1f}-{sgemm_1['gflops_max']:.1f}) on 1 thread; "
          f"(the best of these and the end's is the machine's rate)")
    sys.stdout.flush()

    results = []
    for batch in args.batch_sizes:
        for threads in _threads(args.threads):
            for framework in frameworks:
                workload = bench.Workload(dataset=args.dataset, architecture=architecture, framework=framework,
                                          batch_size=batch, dtype=args.dtype, optimizer=args.optimizer, lr=args.lr,
                                          epochs=args.epochs, warmup_epochs=args.warmup_epochs, threads=threads)
                result = bench.run_workload(workload, data)
                results.append(result)
                label = f"{framework} batch {batch or 'full'}" + (f" threads {threads}" if threads else "")
                print(f"  {label}: {result.status}" + (f", median {result.median:.3f} s" if result.ok else ""),
                      file=sys.stderr, flush=True)

    # measured again at the end: on a shared machine the load may have changed meanwhile,
    # and the machine's rate is the best it showed
    sgemm_end = bench.sgemm_rate(seconds=args.sgemm_seconds)
    sgemm_1_end = bench.sgemm_rate(seconds=args.sgemm_seconds, threads=1)
    best = max(best, sgemm_end["gflops"], sgemm_1_end["gflops"])
    print(f"SGEMM again at the end: {sgemm_end['gflops']:.1f} GFLOP/s with the default threads, "
          f"{sgemm_1_end['gflops']:.1f} on 1 thread; %SGEMM below is of the best seen, {best:.1f}")
    print(f"load average at the end: {bench.machine()['load_average']}")
    print("BLAS / thread pools:", "; ".join(
        f"{b['library']} {b['version'] or ''} {b['api']} threads={b['threads']}" for b in bench.blas_info()))
    print("versions:", ", ".join(f"{k} {v}" for k, v in bench.versions().items()))
    print()
    rows = bench.ratio_table(results, best)
    if args.threads:
        for row, result in zip(rows, results):
            row["framework"] = f"{row['framework']}@{result.workload.threads or 'auto'}"
    print(bench.format_table(rows))
    notes = sorted({f"{r.workload.framework}: {r.notes}" for r in results if r.notes})
    for note in notes:
        print(" ", note)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"date": when, "machine": bench.machine(), "sgemm": sgemm, "sgemm_1_thread": sgemm_1,
                   "sgemm_end": sgemm_end, "sgemm_1_thread_end": sgemm_1_end, "sgemm_best_gflops": best,
                       "results": [r.to_dict() for r in results], "table": rows}, f, indent=1, default=str)
        print(f"wrote {args.json}")
    return 0 if all(r.ok or r.status.startswith("skipped") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
