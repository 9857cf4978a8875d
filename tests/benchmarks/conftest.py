"""pytest-benchmark's report for the benchmark suite: groups in numeric order, and a short
table of the figures the timings alone do not show (samples/s, GFLOP/s, test accuracy,
ratios to tf.keras, PyTorch and JAX in the same run), printed after pytest-benchmark's tables.

Benchmarks add their figures with the ``figures`` fixture; ``--benchmark-json FILE`` keeps
them too, as each benchmark's ``extra_info``.
"""

from __future__ import annotations

import re

import pytest

_FIGURES: list[dict] = []  # one entry per measured benchmark, in the order they ran


@pytest.fixture
def figures(request):
    """``figures(group, framework, seconds=..., samples_per_second=..., gflops=..., test_accuracy=...)``
    records one benchmark's figures for the closing summary (only when measuring)."""
    def record(group: str, framework: str, **values: float) -> None:
        if not request.config.option.benchmark_disable:
            _FIGURES.append({"group": group, "framework": framework, **values})
    return record


def group_order(name: str | None) -> list[tuple[int, int | str]]:
    """Sort key for group names with numbers in them: ``epoch batch 32`` before ``epoch batch 128``
    (pytest-benchmark sorts them as text), and a word such as ``full`` after the numbers."""
    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.findall(r"\d+|\D+", name or "")]


@pytest.hookimpl(hookwrapper=True, optionalhook=True)
def pytest_benchmark_group_stats(config, benchmarks, group_by):
    outcome = yield
    outcome.force_result(sorted(outcome.get_result(), key=lambda pair: group_order(pair[0])))


def _ratio(seconds: float, reference: dict | None) -> str:
    return f"{seconds / reference['seconds']:.2f}x" if reference else "-"


def summary_lines(entries: list[dict]) -> list[str]:
    """The closing summary: per group (in :func:`group_order`), one line per framework, fastest
    first: s/epoch (median), samples/s, GFLOP/s, test accuracy, s/epoch ratio to tf.keras, to
    PyTorch and to JAX (below 1: faster)."""
    lines = []
    for group in sorted({e["group"] for e in entries}, key=group_order):
        rows = sorted((e for e in entries if e["group"] == group), key=lambda e: e["seconds"])
        keras = next((e for e in rows if e["framework"] == "tf.keras"), None)
        torch = next((e for e in rows if e["framework"] == "torch"), None)
        jax = next((e for e in rows if e["framework"] == "jax"), None)
        lines += [f"{group}:", f"  {'framework':<18} {'s/epoch':>8} {'samples/s':>10} {'GFLOP/s':>8} "
                               f"{'test acc':>8} {'vs keras':>8} {'vs torch':>8} {'vs jax':>8}"]
        for e in rows:
            lines.append(f"  {e['framework']:<18} {e['seconds']:>8.3f} {e['samples_per_second']:>10,.0f} "
                         f"{e['gflops']:>8.1f} {e['test_accuracy']:>8.4f} {_ratio(e['seconds'], keras):>8} "
                         f"{_ratio(e['seconds'], torch):>8} {_ratio(e['seconds'], jax):>8}")
    return lines


@pytest.hookimpl(trylast=True)  # after pytest-benchmark's own tables
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _FIGURES:
        return
    dataset = _FIGURES[0].get("dataset", "")
    terminalreporter.write_sep("-", f"benchmark figures ({dataset}; extra_info in --benchmark-json)")
    for line in summary_lines(_FIGURES):
        terminalreporter.write_line(line)
    terminalreporter.write_line("s/epoch: median of the epochs as each framework times its own training loop (the "
                                "tables above time whole calls); vs keras/torch/jax: ratio of s/epoch, below 1 is faster")
