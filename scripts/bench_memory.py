#!/usr/bin/env python3
"""Peak RSS of the whole training job, fastscratch (NumPy, Numba) beside tf.keras and PyTorch.

    python scripts/bench_memory.py                                   # Fashion-MNIST, batch 128 and full
    python scripts/bench_memory.py --markdown memory.md --json memory.json

A thin front end over ``fastscratch.bench.peak_rss`` (one fresh process per framework and
batch size: imports, the data as float32 features, the model, ``--epochs`` epochs, the test
accuracy), printing each figure beside issue 8's bound, the features + 150 MB.  MB are
10**6 bytes.  Until ``fastscratch bench --memory`` exists this is the command behind the
memory table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys

from fastscratch import bench


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="fashion-mnist", help="fashion-mnist, mnist-sample, digits, auto")
    parser.add_argument("--batch-sizes", default="128,full",
                        type=lambda text: [None if b.strip() == "full" else int(b) for b in text.split(",")])
    parser.add_argument("--frameworks", default=",".join(bench.FRAMEWORKS))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--json", default=None, help="write every result record here")
    parser.add_argument("--markdown", default=None, help="write the table as Markdown here")
    args = parser.parse_args(argv)
    frameworks = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    for f in frameworks:
        if f not in bench.FRAMEWORKS:
            parser.error(f"unknown framework {f!r}; expected some of {', '.join(bench.FRAMEWORKS)}")

    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    results = []
    for batch in args.batch_sizes:
        for framework in frameworks:
            workload = bench.Workload(framework=framework, batch_size=batch, dataset=args.dataset, dtype=args.dtype)
            print(f"  measuring {workload.label} ...", file=sys.stderr, flush=True)
            results.append(bench.peak_rss(workload, epochs=args.epochs))
    dataset = next((r.dataset for r in results if r.ok), args.dataset)
    threads = "; ".join(sorted({part for r in results if r.ok for part in r.threads.split("; ")
                                if part and not part.startswith("fastscratch")}))
    header = (f"Peak RSS, {dataset}, {args.dtype}, {args.epochs} epoch(s) + test accuracy, each job in a fresh "
              f"process; {when}; {os.cpu_count()} CPUs; {threads}")
    print(header)
    print("\n".join(bench.format_memory_table(results)))
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(f"`python scripts/bench_memory.py {' '.join(argv if argv is not None else sys.argv[1:])}`: "
                    f"{header}\n\n" + "\n".join(bench.format_memory_table(results, markdown=True)) + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"date": when, "results": [r.to_dict() for r in results]}, f, indent=1, default=str)
    return 0 if all(r.ok or r.status.startswith("skipped") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
