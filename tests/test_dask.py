"""Past one machine: scikit-learn sweeps and the benchmark matrix on a Dask cluster.

Everything runs on real local clusters of worker processes (``LocalCluster(processes=True)``):
the workers are started by Dask's nanny as on a real cluster, so they get its thread
settings, load fastscratch and its Numba cache from disk, and can be killed.  No speed is
asserted.
"""

import concurrent.futures
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

distributed = pytest.importorskip("distributed", reason="the distributed extra is not installed")
import dask  # noqa: E402  (distributed brings it)
pytest.importorskip("sklearn")

import joblib  # noqa: E402  (after the skips: scikit-learn brings it)
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score  # noqa: E402
from threadpoolctl import threadpool_info, threadpool_limits  # noqa: E402

from fastscratch.tools import bench  # noqa: E402
from fastscratch.training import threads as training_threads
from fastscratch.tools import dask as on_dask  # noqa: E402
from fastscratch.sklearn import ScratchMLPClassifier  # noqa: E402

#: the thread variables Dask's nanny sets to 1 before it starts a worker process
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextlib.contextmanager
def _environment(**values):
    """os.environ with the thread variables set to ``values`` (absent when not given) for the block:
    what the shell that starts ``dask worker`` has.  The nanny reads them when it is created."""
    saved = {k: os.environ.get(k) for k in THREAD_VARIABLES}
    try:
        for k in THREAD_VARIABLES:
            os.environ.pop(k, None)
        os.environ.update({k: str(v) for k, v in values.items()})
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _warm_numba_cache():
    """Fill Numba's on-disk cache here first (a no-op when it is already filled), as the first run
    on a machine does, for the depths the tests train."""
    try:
        from fastscratch.kernels import numba_kernels
    except ImportError:
        return
    for layers in (2, 3):
        numba_kernels.warmup(layers, np.float32)


def _cluster(n_workers, threads_per_worker=1, thread_env=None, **options):
    with _environment(**(thread_env or {})):
        return distributed.LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker, processes=True,
                                        dashboard_address=":0", **options)


@pytest.fixture(scope="module")
def client():
    """The issue's cluster: two worker processes of one thread each, as Dask starts them (the
    nanny sets OMP/OPENBLAS/MKL_NUM_THREADS=1 before NumPy loads), each offering one 'bench'."""
    _warm_numba_cache()
    with _cluster(2, resources={on_dask.RESOURCE: 1}) as cluster, distributed.Client(cluster) as c:
        c.wait_for_workers(2)
        yield c


@pytest.fixture(scope="module")
def digits32():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32), y


# ---------------------------------------------------------------- threads and the Numba cache
def _thread_facts():
    """Train a network whose steps are large enough to be cut into parts where threads allow,
    and say what the thread rule gave it (run as a task on a worker, and here)."""
    from fastscratch import NeuralNetwork

    rng = np.random.default_rng(0)
    X = rng.random((512, 64)).astype(np.float32)
    y = rng.integers(0, 10, 512)
    net = NeuralNetwork([64, 256, 256, 10], seed=0, backend="auto")
    net.fit(X, y, lr=0.1, epochs=1, batch_size=256, verbose=False)
    return {"parts": net.epoch_parts, "budget": training_threads.thread_budget(net.kernels), "backend": net.kernels.NAME,
            "blas": [p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"],
            "env": {k: os.environ.get(k) for k in THREAD_VARIABLES}}


def _per_worker(client, function):
    """``function()`` as a task on each worker (pinned there), {address: answer}."""
    addresses = sorted(client.scheduler_info(n_workers=-1)["workers"])
    futures = {a: client.submit(function, workers=[a], allow_other_workers=False, pure=False) for a in addresses}
    return {a: f.result() for a, f in futures.items()}


def test_each_worker_trains_on_one_blas_thread(client):
    pytest.importorskip("numba")  # the NumPy backend never cuts epochs into parts
    here = _thread_facts()
    there = _per_worker(client, _thread_facts)
    assert len(there) == 2
    for facts in there.values():
        assert facts["env"] == {k: "1" for k in THREAD_VARIABLES}  # Dask's nanny set them
        assert facts["blas"] and set(facts["blas"]) == {1}
        assert facts["budget"] == 1 and facts["parts"] == 1, facts
    if here["budget"] >= 2:  # the control: the same fit here, with threads to spare, is cut in parts
        assert here["parts"] >= 2, here


def test_a_worker_told_otherwise_trains_on_more_threads():
    """The documented way to give workers more threads: set the variables in the shell that starts
    ``dask worker`` (the nanny takes them instead of its 1).  Also: one 'bench' group at a time
    on a worker of two threads (the resource, not the thread count, keeps groups apart)."""
    pytest.importorskip("numba")
    if training_threads.usable_cores() < 2:
        pytest.skip("needs 2 cores")
    with _cluster(1, threads_per_worker=2, thread_env={k: 2 for k in THREAD_VARIABLES},
                  resources={on_dask.RESOURCE: 1}) as cluster, distributed.Client(cluster) as c:
        (facts,) = _per_worker(c, _thread_facts).values()
        assert facts["env"] == {k: "2" for k in THREAD_VARIABLES}
        assert set(facts["blas"]) == {2} and facts["budget"] == 2 and facts["parts"] == 2, facts

        groups = [[bench.Workload(framework="fastscratch-numpy", batch_size=batch, dataset="digits")]
                  for batch in (64, 128, 256)]
        with distributed.get_task_stream(c) as stream:
            results = on_dask.run_groups(c, groups, epochs=2, warmup=0, accuracy=False)
        assert [r.workload.batch_size for r in results] == [64, 128, 256]
        spans = sorted((s["start"], s["stop"]) for task in stream.data if task["key"].startswith("fastscratch-")
                       for s in task["startstops"] if s["action"] == "compute")
        assert len(spans) == len(groups)
        for (_, stop), (start, _) in zip(spans, spans[1:]):
            # (a worker stamps a task's stop after its own bookkeeping, which the next task's start
            # may precede by a millisecond or two; two groups at once overlap by a whole group)
            assert start >= stop - 0.05, f"two groups ran at once on one worker: {spans}"


def _cached_fit():
    """A fit on a worker, then Numba's own counts of functions loaded from its cache and compiled."""
    from fastscratch import NeuralNetwork
    from fastscratch.kernels import numba_kernels

    rng = np.random.default_rng(1)
    X = rng.random((300, 20)).astype(np.float32)
    net = NeuralNetwork([20, 16, 3], seed=0, backend="numba")
    net.fit(X, rng.integers(0, 3, 300), lr=0.1, epochs=1, batch_size=64, verbose=False)
    return {"compile_seconds": net.compile_seconds, **numba_kernels.cache_stats(), "pid": os.getpid()}


def test_workers_load_the_numba_kernels_from_the_cache_instead_of_compiling(client):
    pytest.importorskip("numba")
    first = _per_worker(client, _cached_fit)
    again = _per_worker(client, _cached_fit)
    for address, stats in first.items():
        assert stats["compiled"] == 0, f"{address} compiled {stats['compiled']} functions instead of loading them"
        assert stats["cache_dir"] and os.path.isdir(stats["cache_dir"])
        # a worker process loads once; its later tasks find the kernels loaded
        assert again[address]["pid"] == stats["pid"] and again[address]["compile_seconds"] == 0.0
    assert sum(s["loaded"] for s in first.values()) > 0  # every worker loaded its kernels in some earlier task or this one


# ---------------------------------------------------------------- scikit-learn sweeps
def _search(cv=3, **settings):
    model = ScratchMLPClassifier(**{"random_state": 0, "epochs": 5, "batch_size": 128, "optimizer": "sgd",
                                    "learning_rate": 0.1, **settings})
    # log-loss scores are continuous: a difference in the last bits of the weights shows in them
    return GridSearchCV(model, {"hidden_layer_sizes": [(128,), (256, 128)], "learning_rate": [0.05, 0.1]},
                        cv=cv, scoring="neg_log_loss")


SCORE_KEYS = ("mean_test_score", "std_test_score", "rank_test_score", "split0_test_score", "split1_test_score",
              "split2_test_score")


def _assert_same_search(dask_run, local_run):
    assert list(dask_run.cv_results_["params"]) == list(local_run.cv_results_["params"])
    for key in SCORE_KEYS:
        np.testing.assert_array_equal(dask_run.cv_results_[key], local_run.cv_results_[key], err_msg=key)
    assert dask_run.best_params_ == local_run.best_params_ and dask_run.best_score_ == local_run.best_score_
    for a, b in zip(dask_run.best_estimator_.coefs_, local_run.best_estimator_.coefs_):
        np.testing.assert_array_equal(a, b)


def test_grid_search_on_dask_equals_the_n_jobs_1_search(client, digits32):
    """Result for result, with the same thread setting: the workers' one BLAS thread here too
    (fastscratch's results depend on the thread count, not on the process that runs them)."""
    X, y = digits32
    with threadpool_limits(limits=1):
        local = _search().fit(X, y)
        local_scores = cross_val_score(_search().estimator, X, y, cv=3, scoring="neg_log_loss")
        with joblib.parallel_config(backend="dask"), distributed.get_task_stream(client) as stream:
            on_cluster = _search().fit(X, y)
            cluster_scores = cross_val_score(_search().estimator, X, y, cv=3, scoring="neg_log_loss")
    assert {task["worker"] for task in stream.data} == set(client.scheduler_info(n_workers=-1)["workers"])
    _assert_same_search(on_cluster, local)
    np.testing.assert_array_equal(cluster_scores, local_scores)


# ---------------------------------------------------------------- the benchmark matrix
def _fastscratch_frameworks():
    try:
        import numba  # noqa: F401
        return "numba,numpy"
    except ImportError:
        return "numpy"


def _bench(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "fastscratch", "bench", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


def test_bench_on_a_scheduler_runs_each_group_whole_on_one_worker(client, tmp_path):
    address = client.scheduler.address
    out = tmp_path / "bench.json"
    run = _bench("--scheduler", address, "--dataset", "mnist-sample", "--frameworks", _fastscratch_frameworks(),
                 "--batch-sizes", "64,128,full", "--epochs", 2, "--warmup", 0, "--json", out,
                 "--markdown", tmp_path / "bench.md")
    assert run.returncode == 0, run.stderr
    results = json.loads(out.read_text())["results"]
    workers = set(client.scheduler_info(n_workers=-1)["workers"])
    assert len(results) == 3 * len(_fastscratch_frameworks().split(","))
    by_batch = {}
    for r in results:
        assert r["status"] == "ok" and r["worker"] in workers
        assert r["host"] == socket.gethostname() and r["cpu"] and r["cores"] >= 1
        assert "thread" in r["blas"] and r["threads"].startswith(r["blas"]) and r["sgemm_gflops"] > 0
        by_batch.setdefault(r["workload"]["batch_size"], set()).add(r["worker"])
    assert all(len(w) == 1 for w in by_batch.values()), by_batch  # a ratio group never spans workers
    # the table: one section per worker, holding exactly that worker's rows
    sections = {section.split(": host ", 1)[0]: section for section in run.stdout.split("\nWorker ")[1:]}
    assert sorted(sections) == sorted({r["worker"] for r in results})
    for worker, section in sections.items():
        rows = [line.split() for line in section.splitlines()[3:] if line.strip() and line.split()[0] in
                ("64", "128", "full")]
        mine = {("full" if r["workload"]["batch_size"] is None else str(r["workload"]["batch_size"]),
                 r["workload"]["framework"]) for r in results if r["worker"] == worker}
        assert {(row[0], row[1]) for row in rows} == mine
    assert "**Worker tcp://" in (tmp_path / "bench.md").read_text()


@pytest.mark.parametrize("cluster", ["client", "plain_client"])
def test_bench_sweep_on_a_scheduler(cluster, request, tmp_path):
    client = request.getfixturevalue(cluster)
    out = tmp_path / "sweep.json"
    run = _bench("--scheduler", client.scheduler.address, "--sweep", "--dataset", "mnist-sample", "--widths", "8,16",
                 "--batch-sizes", 32, "--frameworks", "numpy", "--epochs", 1, "--warmup", 0, "--sweep-seconds", 0.02,
                 "--json", out)
    assert run.returncode == 0, run.stderr
    points = json.loads(out.read_text())["sweep"]
    assert [p["width"] for p in points] == [8, 16]
    for p in points:
        assert len({r["worker"] for r in p["results"]}) == 1 and p["results"][0]["worker"]
    assert "Worker tcp://" in run.stdout and "rows/epoch" in run.stdout


def test_ratios_divide_only_within_one_workers_group():
    """Two workers each timed the same workload; one also timed PyTorch.  The other's row must
    not be divided by a PyTorch time measured on another machine."""
    def result(framework, worker, seconds):
        return bench.Result(bench.Workload(framework=framework, batch_size=128), worker=worker, n_train=1000,
                            epoch_seconds=[seconds], median_seconds=seconds, min_seconds=seconds,
                            max_seconds=seconds, samples_per_second=1000 / seconds, gflops=1.0, test_accuracy=0.5)

    results = [result("fastscratch-numba", "tcp://a:1", 1.0), result("torch", "tcp://a:1", 2.0),
               result("fastscratch-numba", "tcp://b:1", 4.0)]
    headers = [header for header, _ in bench.RATIO_COLUMNS]
    ratios = [dict(zip(headers, row[-len(headers):])) for row in bench.table_rows(results)]
    assert [r["vs torch"] for r in ratios] == ["0.50x", "1.00x", "-"]
    assert [len(g) for g in bench.ratio_groups(results)] == [2, 1]
    text = bench.format_by_worker(results)
    assert text[0].startswith("Worker tcp://a:1") and any(line.startswith("Worker tcp://b:1") for line in text)


# ---------------------------------------------------------------- failures
def test_an_unreachable_scheduler_is_one_line_and_exit_1_within_the_timeout():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    run = _bench("--scheduler", f"tcp://127.0.0.1:{port}", "--connect-timeout", 2, timeout=120)
    elapsed = time.monotonic() - started
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastscratch bench: error: no Dask scheduler answered at "
                                                   f"tcp://127.0.0.1:{port} within 2 s"), run.stderr
    assert elapsed < 60  # bounded: the 2 s timeout plus start-up, not a hang
    with pytest.raises(ConnectionError, match="within 1 s"):
        on_dask.connect(f"tcp://127.0.0.1:{port}", timeout=1)


@pytest.mark.parametrize("address, message", [("foo://x:1", "unknown address scheme"),
                                              ("tcp://127.0.0.1:port", "not a Dask scheduler address")])
def test_a_malformed_scheduler_address_is_one_line(address, message):
    run = _bench("--scheduler", address, timeout=120)
    assert run.returncode == 1
    assert len(run.stderr.strip().splitlines()) == 1 and message in run.stderr, run.stderr


def test_options_that_do_not_run_on_a_scheduler_are_refused():
    for extra in (["--memory"], ["--target", "0.5"], ["--plot", "x"]):
        run = _bench("--scheduler", "tcp://127.0.0.1:1", *extra, timeout=120)
        assert run.returncode == 2 and "--scheduler" in run.stderr, run.stderr


def _run_python(code):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)


def test_without_dask_the_scheduler_option_names_the_extra():
    run = _run_python("""
        import sys
        sys.modules["distributed"] = None   # an environment without dask.distributed
        from fastscratch.tools.cli import main
        sys.exit(main(["bench", "--scheduler", "tcp://127.0.0.1:1"]))
    """)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [
        "fastscratch bench: error: running on a Dask cluster needs dask.distributed; install it with "
        "`pip install 'fastscratch[distributed]'` (import of distributed halted; None in sys.modules)"]


def test_importing_fastscratch_does_not_import_dask():
    run = _run_python("""
        import sys
        import fastscratch, fastscratch.tools.bench, fastscratch.tools.cli, fastscratch.sklearn
        from sklearn.model_selection import GridSearchCV
        loaded = [m for m in sys.modules if m.split(".")[0] in ("dask", "distributed")]
        assert not loaded, loaded
    """)
    assert run.returncode == 0, run.stderr


@pytest.fixture(scope="module")
def plain_client():
    """Two worker processes of one thread each, without the 'bench' resource; the scheduler's
    active memory manager off (the README's resilient sweeps: it would drop the copies of the
    data that ``scatter=`` put on every worker)."""
    _warm_numba_cache()
    with dask.config.set({"distributed.scheduler.active-memory-manager.start": False}):
        cluster = _cluster(2)
    with cluster, distributed.Client(cluster) as c:
        c.wait_for_workers(2)
        yield c


# ---------------------------------------------------------------- workers without the 'bench' resource
def test_bench_on_a_plain_cluster_runs_each_group_whole_on_one_worker(plain_client, tmp_path):
    """A cluster whose workers offer no 'bench' (a plain LocalCluster) runs the matrix too: every
    group, each whole on one worker, and both workers get groups."""
    out = tmp_path / "bench.json"
    run = _bench("--scheduler", plain_client.scheduler.address, "--dataset", "mnist-sample", "--frameworks",
                 _fastscratch_frameworks(), "--batch-sizes", "32,64,128", "--epochs", 1, "--warmup", 0, "--json", out)
    assert run.returncode == 0, run.stderr
    assert "3 ratio groups on 2 workers of" in run.stdout and "offering" not in run.stdout.splitlines()[0]
    results = json.loads(out.read_text())["results"]
    workers = set(plain_client.scheduler_info(n_workers=-1)["workers"])
    assert len(results) == 3 * len(_fastscratch_frameworks().split(","))
    by_batch = {}
    for r in results:
        assert r["status"] == "ok" and r["worker"] in workers and r["sgemm_gflops"] > 0
        by_batch.setdefault(r["workload"]["batch_size"], set()).add(r["worker"])
    assert sorted(by_batch) == [32, 64, 128]
    assert all(len(w) == 1 for w in by_batch.values()), by_batch  # a ratio group never spans workers
    assert set().union(*by_batch.values()) == workers  # the first two groups went out at once, one to each
    assert sorted(s.split(": host ", 1)[0] for s in run.stdout.split("\nWorker ")[1:]) == sorted(workers)


def _span(group, seconds=0.4, marks=None):
    """A stand-in for a ratio group that says where and when it ran: the worker, its process and
    the wall-clock span of the task (time.time(), one clock for every process on this machine).
    With ``marks`` (a folder), its first attempt at each batch size raises instead."""
    from distributed import get_worker

    started = time.time()
    batch = group[0].batch_size
    if marks is not None:
        mark = os.path.join(marks, str(batch))
        if not os.path.exists(mark):
            open(mark, "w").close()
            raise RuntimeError(f"first attempt at batch {batch}")
    time.sleep(seconds)
    return {"batch": batch, "worker": get_worker().address, "pid": os.getpid(), "start": started, "stop": time.time()}


def _groups(count):
    return [[bench.Workload(framework="fastscratch-numpy", batch_size=16 * (i + 1), dataset="mnist-sample")]
            for i in range(count)]


def _overlaps(spans):
    """The pairs of spans that ran at the same time on one worker."""
    spans = sorted(spans, key=lambda s: (s["worker"], s["start"]))
    return [(a, b) for a, b in zip(spans, spans[1:]) if a["worker"] == b["worker"] and b["start"] < a["stop"]]


def test_one_group_at_a_time_on_a_plain_worker_of_two_threads():
    """Workers of two threads each and no 'bench' resource: Dask itself would run two tasks at once on
    one worker (the control), the benchmark's groups never do; both workers work, and the answers
    come back in the groups' order."""
    with _cluster(2, threads_per_worker=2) as cluster, distributed.Client(cluster) as c:
        c.wait_for_workers(2)
        groups = _groups(6)
        control = c.gather([c.submit(_span, g, 1.0, pure=False) for g in groups[:4]])
        assert _overlaps(control), f"the control ran one task at a time per worker, so shows nothing: {control}"

        assert on_dask.bench_workers(c) == (sorted(c.scheduler_info(n_workers=-1)["workers"]), False)
        arrived = []
        spans = on_dask._submit_all(c, _span, groups, {"seconds": 0.4}, retries=0, on_done=arrived.append)
    assert [s["batch"] for s in spans] == [g[0].batch_size for g in groups]
    assert sorted(a["batch"] for a in arrived) == [s["batch"] for s in spans]
    assert not _overlaps(spans), f"two groups ran at once on one worker: {spans}"
    assert len({s["worker"] for s in spans}) == 2


def test_a_plain_worker_killed_mid_group_has_its_group_run_on_another():
    with _cluster(2) as cluster, distributed.Client(cluster) as c:
        c.wait_for_workers(2)
        killed, done = {}, threading.Event()

        def kill_a_worker_mid_group():
            while not done.is_set():
                busy = {w: keys for w, keys in c.processing().items() if any("_span" in k for k in keys)}
                if busy:
                    worker = sorted(busy)[0]
                    pid = c.run(os.getpid, workers=[worker])[worker]
                    os.kill(pid, signal.SIGKILL)
                    killed.update(worker=worker, pid=pid)
                    return
                time.sleep(0.05)

        killer = threading.Thread(target=kill_a_worker_mid_group, daemon=True)
        killer.start()
        pool = concurrent.futures.ThreadPoolExecutor(1)  # bounded: a group pinned to a dead worker waits forever
        try:
            spans = pool.submit(on_dask._submit_all, c, _span, _groups(3), {"seconds": 2.0}, retries=0,
                                on_done=None).result(timeout=120)
        except concurrent.futures.TimeoutError:
            pytest.fail(f"the groups did not all come back within 120 s; killed: {killed}")
        finally:
            done.set()
            killer.join(30)
            pool.shutdown(wait=False)
    assert killed, "no group was seen running, so nothing was killed"
    assert [s["batch"] for s in spans] == [16, 32, 48]
    # every answer came from a worker that lived: the killed one's group ran again elsewhere
    assert all(s["worker"] != killed["worker"] and s["pid"] != killed["pid"] for s in spans), (killed, spans)
    assert not _overlaps(spans), spans


def test_exceptions_in_a_pinned_group_are_retried(plain_client, tmp_path):
    (tmp_path / "retried").mkdir()
    (tmp_path / "failed").mkdir()
    spans = on_dask._submit_all(plain_client, _span, _groups(3), {"seconds": 0.0, "marks": str(tmp_path / "retried")},
                                retries=1, on_done=None)
    assert [s["batch"] for s in spans] == [16, 32, 48]
    assert sorted(os.listdir(tmp_path / "retried")) == ["16", "32", "48"]  # each failed once, then ran again
    with pytest.raises(RuntimeError, match="first attempt at batch"):
        on_dask._submit_all(plain_client, _span, _groups(3), {"seconds": 0.0, "marks": str(tmp_path / "failed")},
                            retries=0, on_done=None)


def test_on_a_mixed_cluster_only_the_bench_workers_get_groups(tmp_path):
    """One plain worker and one started as the README says (``--resources bench=1``): the groups
    go to the bench worker alone, through the resource."""
    with _cluster(1) as cluster, distributed.Client(cluster) as c:
        c.wait_for_workers(1)
        (plain,) = c.scheduler_info(n_workers=-1)["workers"]
        worker = subprocess.Popen([sys.executable, "-m", "dask", "worker", c.scheduler.address, "--nthreads", "1",
                                   "--resources", f"{on_dask.RESOURCE}=1", "--no-dashboard"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  env={**os.environ, "PYTHONPATH": os.pathsep.join(  # _span's module, by reference
                                      filter(None, [os.path.dirname(__file__), os.environ.get("PYTHONPATH")]))})
        try:
            c.wait_for_workers(2, timeout=120)
            (offering,) = set(c.scheduler_info(n_workers=-1)["workers"]) - {plain}
            assert on_dask.bench_workers(c) == ([offering], True)
            spans = on_dask._submit_all(c, _span, _groups(3), {"seconds": 0.2}, retries=0, on_done=None)
        finally:
            worker.terminate()
            worker.wait(60)
    assert [s["batch"] for s in spans] == [16, 32, 48]
    assert {s["worker"] for s in spans} == {offering}


def test_a_scheduler_without_workers_says_how_to_start_one():
    with _cluster(0) as cluster:
        address = cluster.scheduler_address
        run = _bench("--scheduler", address, "--dataset", "mnist-sample", timeout=120)
    assert run.returncode == 1
    (line,) = run.stderr.strip().splitlines()
    assert f"no worker is connected to the Dask scheduler at {address}" in line
    assert f"dask worker {address} --nthreads 1" in line and "--resources bench=1" in line


@pytest.mark.slow
def test_a_worker_killed_mid_sweep_has_its_task_rerun_and_the_search_ends_the_same(plain_client, digits32):
    """The README's resilient form: the data and the folds scattered to every worker first
    (joblib's ``scatter=``, a broadcast) and kept there (the scheduler's memory manager off), so
    the worker that dies holds no only copy of anything a task needs and the scheduler runs its
    task again on another.  (Without it joblib scatters each argument to one worker, and a task
    whose input died with that worker is cancelled: dask/distributed#3149.)"""
    X, y = digits32
    splits = list(StratifiedKFold(n_splits=3).split(X, y))  # the folds of GridSearchCV(cv=3)
    everything = [X, y, *(part for split in splits for part in split)]
    search = lambda: _search(cv=splits, epochs=120)  # noqa: E731  (fits of about half a second: a kill lands in one)
    with threadpool_limits(limits=1):
        local = _search(epochs=120).fit(X, y)
    client = plain_client
    killed, done = {}, threading.Event()

    def kill_a_worker_mid_task():
        while not done.is_set():
            running = {w: keys for w, keys in client.call_stack().items() if keys}
            if running:
                worker, keys = next(iter(running.items()))
                pid = client.run(os.getpid, workers=[worker])[worker]
                if client.call_stack(keys=list(keys)).get(worker):  # still running there: kill it now
                    os.kill(pid, signal.SIGKILL)
                    killed.update(worker=worker, keys=list(keys), pid=pid)
                    return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_a_worker_mid_task, daemon=True)
    with threadpool_limits(limits=1), joblib.parallel_config(backend="dask", scatter=everything):
        killer.start()
        try:
            on_cluster = search().fit(X, y)
        finally:
            done.set()
            killer.join(30)
    assert killed, "no task was seen running, so nothing was killed"
    with pytest.raises(ProcessLookupError):
        os.kill(killed["pid"], 0)  # that worker process is gone
    # the scheduler saw the killed task's worker leave while it ran, and ran the task again elsewhere
    story = client.story(*killed["keys"])
    # (source, key, start, finish, ...): the scheduler took it back from the dead worker...
    assert any(t[0] == "scheduler" and t[2:4] == ("processing", "released") and t[5].startswith("handle-worker-cleanup")
               for t in story), story
    # ...and another worker computed it
    assert any(t[0] not in ("scheduler", killed["worker"]) and t[2:4] == ("executing", "memory") for t in story), story
    assert killed["worker"] not in client.scheduler_info(n_workers=-1)["workers"]
    _assert_same_search(on_cluster, local)
