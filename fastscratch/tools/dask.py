"""Past one machine: the benchmark matrix on a Dask cluster (``dask.distributed``).

    >>> from fastscratch.tools import bench
    >>> from fastscratch.tools.dask import connect, run_groups
    >>> client = connect("tcp://scheduler:8786")                       # doctest: +SKIP
    >>> groups = [[bench.Workload(framework=f, batch_size=b) for f in ("fastscratch-numba", "torch")]
    ...           for b in (32, 128, 512)]
    >>> results = run_groups(client, groups)                           # doctest: +SKIP
    >>> print("\\n".join(bench.format_by_worker(results)))             # doctest: +SKIP

Ratios only mean something on one machine, so the unit sent to a worker is a whole
*ratio group* (:func:`fastscratch.tools.bench.run_group`: every framework at one batch size
and width), never a single framework: :func:`run_groups` submits one Dask task per
group, and a worker runs one group at a time however many threads it has.  Which
workers, and how, :func:`bench_workers` decides once, at the start:

- where workers offer the worker resource :data:`RESOURCE` (``dask worker ADDRESS
  --resources bench=1``), the groups go to those workers only, each task holding one
  unit of it: Dask's own scheduler keeps a worker to one group at a time and places the
  groups;
- on a cluster where no worker offers it (a plain ``LocalCluster()``, a cluster someone
  already runs), each task is pinned to one worker (``workers=[address],
  allow_other_workers=False``) and a worker's next group is submitted only when its
  previous one has finished, so each worker holds at most one group of ours; workers
  that join while it runs get groups too.

Every :class:`~fastscratch.tools.bench.Result` records the worker's address, host,
CPU, usable cores, BLAS and threads, and the SGEMM rate measured there just before its
group; :func:`fastscratch.tools.bench.format_by_worker` prints the rows worker by worker, and
the ratio columns divide only within a group, so never across machines.  The sweep's
points (:func:`run_sweep`) go out the same way.

Failures: a worker that dies while running a group has its group run again on another
worker (with the resource, the scheduler's own rescheduling; pinned, this module cancels
the task and submits the group to a free worker, and more than Dask's
``distributed.scheduler.allowed-failures`` such deaths of one group end the run with
``RuntimeError``, as Dask ends a task with ``KilledWorker``); a group's results come back
all at once, so none of a killed run's epochs is kept.  An exception inside a task is retried ``retries`` times (Dask's
``retries``; pinned, on the same worker), and :func:`connect` gives up on an unreachable
scheduler after ``timeout`` seconds with a :class:`ConnectionError`.

scikit-learn sweeps need nothing from this module: ``ScratchMLPClassifier`` runs in
``GridSearchCV`` under ``joblib.parallel_config(backend="dask")`` (see the README's
"Past one machine").  Dask is an optional dependency (``pip install
'fastscratch[distributed]'``): ``import fastscratch`` never imports it, only this module
does, when one of its functions is called.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any, NamedTuple

from . import bench

__all__ = ["RESOURCE", "CONNECT_TIMEOUT", "INSTALL_HINT", "Placement", "import_distributed", "connect",
           "bench_workers", "run_groups", "run_sweep", "run_group_task", "sweep_point_task"]

#: The worker resource one benchmark task holds while it runs, where workers offer it: a worker
#: started with ``dask worker ADDRESS --resources bench=1`` runs one ratio group at a time, and
#: only such workers get groups.  Optional: without it each group is pinned to a worker instead.
RESOURCE = "bench"
#: Seconds between two looks at the scheduler's workers while pinned groups run (to find a
#: worker that died holding a group, or one that joined).
POLL_SECONDS = 0.5
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


class Placement(NamedTuple):
    """Where :func:`run_groups` sends the groups: ``workers`` (addresses, sorted) and
    ``by_resource``: ``True`` when the tasks hold :data:`RESOURCE` on the workers that offer it,
    ``False`` when each task is pinned to one of the cluster's workers, one at a time per worker."""

    workers: list[str]
    by_resource: bool


def _workers(client: Any) -> dict[str, dict[str, Any]]:
    """The scheduler's workers, by address (``info["status"]``: ``"running"`` when it takes tasks;
    ``"paused"`` or ``"closing_gracefully"`` ones finish what they run but start nothing new)."""
    return client.scheduler_info(n_workers=-1)["workers"]


def _accepting(workers: dict[str, dict[str, Any]]) -> set[str]:
    return {address for address, info in workers.items() if info.get("status", "running") == "running"}


def bench_workers(client: Any) -> Placement:
    """Where the groups go: the workers that offer :data:`RESOURCE` when any does (the others, in a
    mixed cluster, get none: a worker started with the resource was started for benchmarks), each
    task holding one unit; otherwise every worker, each task pinned to one worker and a worker given
    its next group only when its previous one is done.  ``RuntimeError`` saying how to start a
    worker when the scheduler has none."""
    workers = _workers(client)
    offering = sorted(address for address, info in workers.items() if info.get("resources", {}).get(RESOURCE, 0) >= 1)
    if offering:
        return Placement(offering, True)
    if not workers:
        address = client.scheduler.address
        raise RuntimeError(f"no worker is connected to the Dask scheduler at {address}; start one on each machine "
                           f"with `dask worker {address} --nthreads 1` (add `--resources {RESOURCE}=1` to keep "
                           "benchmark groups on the workers that have it)")
    return Placement(sorted(workers), False)


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
    """One task per group, placed as :func:`bench_workers` says (holding one :data:`RESOURCE`, or
    pinned to a worker that holds no other group of ours); the answers in ``groups``' order
    (``on_done(answer)`` as each arrives)."""
    distributed = import_distributed()
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise ValueError(f"retries must be a non-negative integer, got {retries!r}")
    groups = [list(group) for group in groups]
    for group in groups:
        bench.check_group(group)
    placement = bench_workers(client)

    def submit(index: int, **where: Any) -> Any:
        return client.submit(task, groups[index], **kwargs, **where, retries=retries, pure=False,
                             key=f"fastscratch-{task.__name__}-{index}-{uuid.uuid4().hex[:12]}")

    if not placement.by_resource:
        return _run_pinned(client, distributed, submit, len(groups), on_done)
    futures = [submit(index, resources={RESOURCE: 1}) for index in range(len(groups))]
    try:
        if on_done is not None:
            for future in distributed.as_completed(futures):
                on_done(future.result())
        return [future.result() for future in futures]
    finally:
        for future in futures:
            future.release()


def _run_pinned(client: Any, distributed: ModuleType, submit: Callable[..., Any], count: int,
                on_done: Callable[[Any], None] | None) -> list[Any]:
    """Groups ``0 .. count-1`` on workers without :data:`RESOURCE`: each task pinned to one worker
    that takes tasks and holds no other group of ours, the next group submitted to a worker when its
    previous one is done.  Every :data:`POLL_SECONDS` the scheduler's workers are looked at again:
    a group whose worker has left is cancelled and goes first to the next free worker (at most
    ``distributed.scheduler.allowed-failures`` times, as Dask allows a task; then
    ``RuntimeError``), a worker that joined gets groups.  With no worker left it waits for one,
    as a Dask task waits for a worker that can run it."""
    import dask

    allowed = int(dask.config.get("distributed.scheduler.allowed-failures", 3))
    answers: list[Any] = [None] * count
    waiting = deque(range(count))  # groups not submitted yet (a dead worker's group goes first)
    running: dict[Any, tuple[int, str]] = {}  # future: (group, worker)
    deaths = [0] * count
    try:
        while waiting or running:
            workers = _workers(client)
            for future, (index, worker) in list(running.items()):
                if worker not in workers and not future.done():  # its worker died or left
                    del running[future]
                    future.cancel()
                    deaths[index] += 1
                    if deaths[index] > allowed:
                        raise RuntimeError(f"ratio group {index} was running on a worker that left the cluster "
                                           f"{deaths[index]} times (the last {worker}); Dask's "
                                           f"distributed.scheduler.allowed-failures is {allowed}")
                    waiting.appendleft(index)
            busy = {worker for _, worker in running.values()}
            for worker in sorted(_accepting(workers) - busy):
                if not waiting:
                    break
                index = waiting.popleft()
                running[submit(index, workers=[worker], allow_other_workers=False)] = (index, worker)
            if not running:
                time.sleep(POLL_SECONDS)  # no worker to run the groups left: wait for one to join
                continue
            try:
                done = distributed.wait(list(running), timeout=POLL_SECONDS, return_when="FIRST_COMPLETED").done
            except TimeoutError:
                continue
            for future in done:
                index, _ = running.pop(future)
                answers[index] = future.result()  # an exception after its retries ends the run
                future.release()
                if on_done is not None:
                    on_done(answers[index])
        return answers
    finally:
        for future in running:
            future.cancel()


def run_groups(client: Any, groups: Sequence[Sequence[bench.Workload]], epochs: int = 3, warmup: int = 1,
               accuracy: bool = True, retries: int = 2,
               on_group: Callable[[list[bench.Result]], None] | None = None) -> list[bench.Result]:
    """Time each ratio group of ``groups`` (lists of :class:`~fastscratch.tools.bench.Workload` alike but
    for the framework, :func:`fastscratch.tools.bench.check_group`) whole on one worker of ``client``'s
    cluster, as :func:`run_group_task`, one group at a time per worker: on the workers that offer
    :data:`RESOURCE` if any does, otherwise on every worker, each task pinned to one
    (:func:`bench_workers`).  Returns every group's Results, in ``groups``' order, each recording the
    worker that measured it.  ``on_group(results)`` as each group arrives.  A group whose worker
    dies runs again on another; an exception in a group is retried ``retries`` times.  The datasets
    are read on the workers, by name: resolve ``"auto"`` first
    (:func:`fastscratch.tools.bench.resolve_dataset`) so that every worker trains on the same one."""
    answers = _submit_all(client, run_group_task, groups, {"epochs": epochs, "warmup": warmup, "accuracy": accuracy},
                          retries, on_group)
    return [result for results in answers for result in results]


def run_sweep(client: Any, groups: Sequence[Sequence[bench.Workload]], epochs: int = 3, warmup: int = 1,
              seconds: float = 0.5, sgemm_seconds: float = 0.3, retries: int = 2,
              on_point: Callable[[bench.SweepPoint], None] | None = None) -> list[bench.SweepPoint]:
    """The sweep (:func:`fastscratch.tools.bench.sweep`) with each point, from
    :func:`fastscratch.tools.bench.sweep_groups`, on a worker as :func:`sweep_point_task`, placed as
    :func:`run_groups` places groups; the points in ``groups``' order."""
    return _submit_all(client, sweep_point_task, groups, {"epochs": epochs, "warmup": warmup, "seconds": seconds,
                                                          "sgemm_seconds": sgemm_seconds}, retries, on_point)
