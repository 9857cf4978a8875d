#!/usr/bin/env python3
"""The thread study behind the Numba epoch's rule: s/epoch by batch size, thread scheme and load.

    python scripts/bench_epoch.py                                   # Fashion-MNIST, batch 32/128/512/full, idle
    python scripts/bench_epoch.py --load 0,1 --batch-sizes 128,512  # and with one other busy process
    python scripts/bench_epoch.py --schemes rule,one,parts,openblas --json out/threads.json

Schemes, all on the Numba backend through ``NeuralNetwork.fit`` (one epoch per call):

- ``rule``: what fit does by default (``numba_kernels.epoch_threads``);
- ``one``: one thread (one part, BLAS on one thread);
- ``parts``: the step cut into one part per core, helper threads taking parts, BLAS on one
  thread each (what the rule does from 64 to 2047 rows);
- ``openblas``: one part, BLAS on all its threads (the rule for taller passes, and what fit did
  everywhere from 256 rows before the parts).

The schemes' epochs run in interleaved rounds (the order reversed every other round), so a
change in a shared machine's speed hits them alike; ``--load N`` starts N processes that keep
one core each busy with single-threaded GEMMs for the whole measurement (another job on the
machine).  Per batch size and load it prints each scheme's median [min-max] s/epoch, its ratio
to ``one``, and the share of parts the helper threads took (0 when they never got a core).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time

from fastscratch import NeuralNetwork
from fastscratch.tools import bench
from fastscratch.training import threads as training_threads
from fastscratch.kernels import numba_kernels

SCHEMES = ("rule", "one", "parts", "openblas")
_BUSY = ("import os; os.environ['OPENBLAS_NUM_THREADS'] = '1'; import numpy as np; "
         "a = np.random.rand(256, 256).astype(np.float32)\nwhile True: a @ a")


def _batch_sizes(text: str) -> list[int | None]:
    return [None if part.strip() in ("full", "none", "0") else int(part) for part in text.split(",")]


def _scheme(name: str) -> int | None:
    """Put the backend's thread rule for scheme ``name`` in place (the study swaps the rule
    itself, which is what it measures) and return fit's ``threads`` for it."""
    if name == "parts":
        numba_kernels.epoch_threads = lambda sizes, rows, threads: (min(threads, numba_kernels.MAX_PARTS), 1)
    elif name == "openblas":
        numba_kernels.epoch_threads = lambda sizes, rows, threads: (1, None)
    else:  # "rule", and "one": the rule on one thread
        numba_kernels.epoch_threads = _RULE
    return 1 if name == "one" else None


_RULE = numba_kernels.epoch_threads


def measure(data, sizes, batch, schemes, epochs: int, lr: float) -> dict[str, dict]:
    """Interleaved rounds of one epoch per scheme; each scheme trains its own network."""
    X, y = data[0], data[1]
    nets = {name: NeuralNetwork(sizes, seed=0, backend="numba") for name in schemes}
    times: dict[str, list[float]] = {name: [] for name in schemes}
    shares: dict[str, list[float]] = {name: [] for name in schemes}
    try:
        for round_index in range(epochs + 1):  # the first round is the warm-up
            for name in (schemes if round_index % 2 == 0 else schemes[::-1]):
                threads = _scheme(name)
                net = nets[name]
                net.fit(X, y, lr=lr, epochs=1, batch_size=batch, verbose=False, threads=threads)
                if round_index:
                    times[name].append(net.history.seconds[-1])
                    parts = net.thread_parts
                    shares[name].append(1 - parts[0] / sum(parts) if parts and sum(parts) else 0.0)
    finally:
        _scheme("rule")
    return {name: {"median": statistics.median(t), "min": min(t), "max": max(t), "seconds": t,
                   "helper_share": statistics.median(shares[name]), "parts": nets[name].epoch_parts}
            for name, t in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="fashion-mnist", help="fashion-mnist, mnist-sample, digits, auto")
    parser.add_argument("--batch-sizes", default="32,128,512,full", type=_batch_sizes)
    parser.add_argument("--hidden", default="128,64")
    parser.add_argument("--schemes", default=",".join(SCHEMES))
    parser.add_argument("--load", default="0", help="comma-separated numbers of busy background processes")
    parser.add_argument("--epochs", type=int, default=3, help="timed rounds, after one warm-up round")
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--json", default=None, help="write every figure here")
    args = parser.parse_args(argv)
    schemes = [s.strip() for s in args.schemes.split(",") if s.strip()]
    unknown = [s for s in schemes if s not in SCHEMES]
    if unknown:
        parser.error(f"unknown scheme(s) {', '.join(unknown)}; expected some of {', '.join(SCHEMES)}")
    loads = [int(v) for v in args.load.split(",")]
    dataset, data = bench.load_data(args.dataset)
    sizes = [data[0].shape[1], *map(int, args.hidden.split(",")), int(data[1].max()) + 1]
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"fastscratch thread study, {when}: {dataset} ({len(data[0]):,} rows), {'-'.join(map(str, sizes))}, "
          f"float32, sgd lr {args.lr}; {training_threads.usable_cores()} cores, thread budget "
          f"{training_threads.thread_budget(numba_kernels)}; BLAS: {bench.thread_summary()}")
    print(f"{args.epochs} interleaved rounds per batch size and load (after a warm-up round); "
          "s/epoch median [min-max], ratio to 'one', helpers' share of the parts")
    records = []
    for load in loads:
        busy = [subprocess.Popen([sys.executable, "-c", _BUSY]) for _ in range(load)]
        try:
            time.sleep(0.5 if busy else 0)
            for batch in args.batch_sizes:
                figures = measure(data, sizes, batch, schemes, args.epochs, args.lr)
                base = figures.get("one", {}).get("median")
                cells = [f"{name} {f['median']:.3f} [{f['min']:.3f}-{f['max']:.3f}]"
                         + (f" {f['median'] / base:.2f}x" if base else "") + f" ({f['helper_share']:.0%})"
                         for name, f in figures.items()]
                print(f"  load {load}  batch {batch or 'full':>5}:  " + "  ".join(cells), flush=True)
                records.append({"load": load, "batch_size": batch, "figures": figures})
        finally:
            for process in busy:
                process.kill()
                process.wait()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"date": when, "dataset": dataset, "sizes": sizes, "threads": bench.thread_summary(),
                       "records": records}, f, indent=1)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
