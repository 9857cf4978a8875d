"""Past one machine: the benchmark matrix on a Dask cluster (``dask.distributed``).

    >>> from fastscratch import bench
    >>> from fastscratch.tools.dask import connect, run_groups
    >>> client = connect("tcp://scheduler:8786")                       # doctest: +SKIP
    >>> groups = [[bench.Workload(framework=f, batch_size=b) for f in ("fastscratch-numba", "torch")]
    ...           for b in (32, 128, 512)]
    >>> results = run_groups(client, groups)                           # doctest: +SKIP
    >>> print("\\n".join(bench.format_by_worker(results)))             # doctest: +SKIP

Ratios only mean something on one machine, so the unit sent to a worker is a whole
*ratio group* (:func:`fastscratch.tools.bench.run_group`: every framework at one batch size
and width), never a single framework: :func:`run_groups` submits one Dask task per
group, each needing one unit of the worker resource :data:`RESOURCE`, so a worker
started with ``--resources bench=1`` runs one group at a time however many threads
it has.  Every :class:`~fastscratch.tools.bench.Result` records the worker's address, host,
CPU, usable cores, BLAS and threads, and the SGEMM rate measured there just before its
group; :func:`fastscratch.tools.bench.format_by_worker` prints the rows worker by worker, and
the ratio columns divide only within a group, so never across machines.  The sweep's
points (:func:`run_sweep`) go out the same way.

Failures are Dask's to handle: a worker that dies while running a group has that
task run again on another worker (the scheduler's own rescheduling; a group's results
come back all at once, so none of a killed run's epochs is kept), an exception inside
a task is retried ``retries`` times (Dask's ``retries``), and :func:`connect` gives up
on an unreachable scheduler after ``timeout`` seconds with a :class:`ConnectionError`.

scikit-learn sweeps need nothing from this module: ``ScratchMLPClassifier`` runs in
``GridSearchCV`` under ``joblib.parallel_config(backend="dask")`` (see the README's
"Past one machine").  Dask is an optional dependency (``pip install
'fastscratch[distributed]'``): ``import fastscratch`` never imports it, only this module
does, when one of its functions is called.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from . import bench

__all__ = ["RESOURCE", "CONNECT_TIMEOUT", "INSTALL_HINT", "import_distributed", "connect", "bench_workers",
           "run_groups", "run_sweep", "run_group_task", "sweep_point_task"]

#: The worker resource one benchmark task holds while it runs: a worker started with
#: ``dask worker ADDRESS --resources bench=1`` runs one ratio group at a time.
RESOURCE = "bench"
#: Seconds :func:`connect` waits for the scheduler before giving up.
CONNECT_TIMEOUT = 5.0
INSTALL_HINT = "pip install 'fastscratch[distributed]'"


def import_distributed() -> ModuleType:
    """The ``distributed`` package; ``ImportError`` naming the extra that installs it."""
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(f"running on a Dask cluster needs dask.distributed; install it with `{INSTALL_HINT}` "
                          f"({exc})") from None
    return distributed


def connect(address: str, timeout: float = CONNECT_TIMEOUT) -> Any:
    """A ``distributed.Client`` connected to the scheduler at ``address`` (``tcp://host:8786``, or
    ``host:8786``).  ``ConnectionError`` (one line, naming the address) when no scheduler answers
    within ``timeout`` seconds (refused connections are retried until then, as Dask does);
    ``ValueError`` for an address Dask cannot parse or a non-positive ``timeout``.  Dask's own log
    lines about the failed attempts are kept quiet."""
    if not isinstance(address, str) or not address.strip():
        raise ValueError(f"the scheduler address must be a non-empty string such as tcp://host:8786, got {address!r}")
    if not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    distributed = import_distributed()
    quiet = logging.getLogger("distributed")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # its retry warnings would only repeat the one line below
    try:
        return distributed.Client(address.strip(), timeout=timeout)
    except (ValueError, TypeError) as exc:  # an unknown scheme, a port that is not a number
        raise ValueError(f"not a Dask scheduler address: {address!r} ({_first_line(exc)}); expected "
                         "tcp://host:port") from None
    except OSError as exc:  # refused or unanswered until the timeout (TimeoutError is an OSError)
        raise ConnectionError(f"no Dask scheduler answered at {address} within {timeout:g} s "
                              f"({_first_line(exc)})") from None
    finally:
        quiet.setLevel(level)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def bench_workers(client: Any) -> list[str]:
    """The addresses of the workers that offer :data:`RESOURCE`; ``RuntimeError`` saying how to
    start one when there is none (a task needing the resource would otherwise wait forever)."""
    workers = client.scheduler_info(n_workers=-1)["workers"]
    offering = sorted(address for address, info in workers.items() if info.get("resources", {}).get(RESOURCE, 0) >= 1)
    if not offering:
        address = client.scheduler.address
        raise RuntimeError(f"no worker of the scheduler at {address} offers the '{RESOURCE}' resource "
                           f"({len(workers)} worker{'s' if len(workers) != 1 else ''} connected); start benchmark "
                           f"workers with `dask worker {address} --nthreads 1 --resources {RESOURCE}=1`")
    return offering


def _where() -> dict[str, Any]:
    """The worker this runs on: its address (``""`` outside a worker)."""
    try:
        from distributed import get_worker

        return {"worker": get_worker().address}
    except (ImportError, ValueError):
        return {"worker": ""}


def _stamp(results: Sequence[bench.Result], **facts: Any) -> None:
    for result in results:
        for key, value in facts.items():
            setattr(result, key, value)


def run_group_task(workloads: Sequence[bench.Workload], epochs: int = 3, warmup: int = 1,
                   accuracy: bool = True) -> list[bench.Result]:
    """What a worker runs for one ratio group: this machine's SGEMM rate at (128x784)x(784x128),
    then :func:`fastscratch.tools.bench.run_group` on the dataset as found on this machine; each Result
    records the worker (``worker``, and ``host``, ``cpu``, ``cores``, ``blas``, ``threads`` as
    every run does) and the rate (``sgemm_gflops``)."""
    first = workloads[0]
    where = _where()
    try:
        data = bench.load_data(first.dataset, first.dtype)[1]
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"on worker {where['worker'] or '?'}: {exc}") from None
    rate = bench.sgemm_rate(dtype=first.dtype)[0]
    results = bench.run_group(workloads, epochs=epochs, warmup=warmup, data=data, accuracy=accuracy)
    _stamp(results, sgemm_gflops=rate, **where)
    return results


def sweep_point_task(group: Sequence[bench.Workload], epochs: int = 3, warmup: int = 1, seconds: float = 0.5,
                     sgemm_seconds: float = 0.3) -> bench.SweepPoint:
    """What a worker runs for one point of the sweep: :func:`fastscratch.tools.bench.sweep_point` (the
    SGEMM rate and rows chosen on this machine), its Results stamped with the worker."""
    where = _where()
    try:
        point = bench.sweep_point(group, epochs=epochs, warmup=warmup, seconds=seconds, sgemm_seconds=sgemm_seconds)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"on worker {where['worker'] or '?'}: {exc}") from None
    _stamp(point.results, **where)
    return point


def _submit_all(client: Any, task: Callable[..., Any], groups: Sequence[Sequence[bench.Workload]],
                kwargs: dict[str, Any], retries: int, on_done: Callable[[Any], None] | None) -> list[Any]:
    """One task per group, each holding one :data:`RESOURCE` while it runs; the answers in
    ``groups``' order (``on_done(answer)`` as each arrives)."""
    distributed = import_distributed()
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise ValueError(f"retries must be a non-negative integer, got {retries!r}")
    groups = [list(group) for group in groups]
    for group in groups:
        bench.check_group(group)
    bench_workers(client)
    futures = [client.submit(task, group, **kwargs, resources={RESOURCE: 1}, retries=retries, pure=False,
                             key=f"fastscratch-{task.__name__}-{index}-{uuid.uuid4().hex[:12]}")
               for index, group in enumerate(groups)]
    try:
        if on_done is not None:
            for future in distributed.as_completed(futures):
                on_done(future.result())
        return [future.result() for future in futures]
    finally:
        for future in futures:
            future.release()


def run_groups(client: Any, groups: Sequence[Sequence[bench.Workload]], epochs: int = 3, warmup: int = 1,
               accuracy: bool = True, retries: int = 2,
               on_group: Callable[[list[bench.Result]], None] | None = None) -> list[bench.Result]:
    """Time each ratio group of ``groups`` (lists of :class:`~fastscratch.tools.bench.Workload` alike but
    for the framework, :func:`fastscratch.tools.bench.check_group`) on a worker of ``client``'s cluster
    that offers :data:`RESOURCE`, one group at a time per worker, as :func:`run_group_task`.
    Returns every group's Results, in ``groups``' order, each recording the worker that measured
    it.  ``on_group(results)`` as each group arrives.  The datasets are read on the workers, by
    name: resolve ``"auto"`` first (:func:`fastscratch.tools.bench.resolve_dataset`) so that every
    worker trains on the same one."""
    answers = _submit_all(client, run_group_task, groups, {"epochs": epochs, "warmup": warmup, "accuracy": accuracy},
                          retries, on_group)
    return [result for results in answers for result in results]


def run_sweep(client: Any, groups: Sequence[Sequence[bench.Workload]], epochs: int = 3, warmup: int = 1,
              seconds: float = 0.5, sgemm_seconds: float = 0.3, retries: int = 2,
              on_point: Callable[[bench.SweepPoint], None] | None = None) -> list[bench.SweepPoint]:
    """The sweep (:func:`fastscratch.tools.bench.sweep`) with each point, from
    :func:`fastscratch.tools.bench.sweep_groups`, on a worker as :func:`sweep_point_task`; the points
    in ``groups``' order."""
    return _submit_all(client, sweep_point_task, groups, {"epochs": epochs, "warmup": warmup, "seconds": seconds,
                                                          "sgemm_seconds": sgemm_seconds}, retries, on_point)
