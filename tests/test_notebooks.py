"""notebooks/: each .ipynb is stored without outputs and agrees with its paired py:percent script
(the script is what reviews read), and both notebooks run top to bottom on a fresh kernel.

The notebooks run with ``FASTSCRATCH_NOTEBOOK_QUICK=1`` (shorter training) unless the variable is
already set; ``FASTSCRATCH_NOTEBOOK_FIGURES=DIR`` passes through, so ``make notebook-figures``
gets the README's pictures from these same runs.  A cell that raises fails the test; without
TensorFlow, TensorflowNN is skipped with the reason.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="the notebook tests need the dev extra (nbformat)")
jupytext = pytest.importorskip("jupytext", reason="the notebook tests need the dev extra (jupytext)")

REPO = Path(__file__).resolve().parents[1]
#: the notebooks to check; FASTSCRATCH_NOTEBOOK_DIR points the run test at copies (the planted-error test)
NOTEBOOKS = Path(os.environ.get("FASTSCRATCH_NOTEBOOK_DIR") or REPO / "notebooks")
NAMES = ["TestNN", "TensorflowNN"]
#: what a notebook needs beyond the dev extra's runner, and why it is skipped without it
NEEDS = {"TensorflowNN": ("tensorflow", "TensorflowNN needs TensorFlow: pip install -e '.[keras]'")}
#: a notebook's whole run, generous for a loaded 2-core machine (each takes well under a minute)
TIMEOUT = 300


def _cells(notebook) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source.strip()) for cell in notebook.cells]


def check_pair(ipynb: Path, script: Path) -> None:
    """AssertionError unless ``ipynb`` holds no outputs and the same cells (type and source) as its
    py:percent ``script``, and says it is paired with it."""
    stored = nbformat.read(ipynb, as_version=4)
    fix = f"run `jupytext --sync {ipynb.name}` in notebooks/ (and strip outputs before committing)"
    for index, cell in enumerate(stored.cells):
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, \
                f"{ipynb.name}: cell {index} is stored with outputs; clear them ({fix})"
    formats = stored.metadata.get("jupytext", {}).get("formats", "")
    assert "py:percent" in formats, f"{ipynb.name} is not paired with a py:percent script ({fix})"
    from_script = jupytext.read(script)
    ours, theirs = _cells(stored), _cells(from_script)
    for index, (a, b) in enumerate(zip(ours, theirs)):
        assert a == b, f"{ipynb.name} and {script.name} differ at cell {index}:\n{a}\n---\n{b}\n({fix})"
    assert len(ours) == len(theirs), \
        f"{ipynb.name} has {len(ours)} cells, {script.name} {len(theirs)} ({fix})"


def run_notebook(path: Path, cwd: Path, timeout: int = TIMEOUT):
    """Execute the notebook at ``path`` top to bottom on a fresh kernel of this Python, in ``cwd``;
    raises ``nbclient.exceptions.CellExecutionError`` (naming the cell and its traceback) when a cell
    raises.  Returns the executed notebook."""
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    env = {"FASTSCRATCH_NOTEBOOK_QUICK": "1", "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    previous = {key: os.environ.get(key) for key in env}
    for key, value in env.items():
        os.environ.setdefault(key, value)  # the kernel inherits this process's environment
    try:
        # kernel_name python3: ipykernel's own spec, which runs this interpreter (the venv's)
        client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(cwd)}})
        client.execute()
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return notebook


@pytest.mark.parametrize("name", NAMES)
def test_notebook_and_its_script_agree(name):
    check_pair(NOTEBOOKS / f"{name}.ipynb", NOTEBOOKS / f"{name}.py")


def test_pairing_check_fails_when_script_and_notebook_disagree(tmp_path):
    for name in ("TestNN.ipynb", "TestNN.py"):
        shutil.copy(NOTEBOOKS / name, tmp_path / name)
    script = tmp_path / "TestNN.py"
    check_pair(tmp_path / "TestNN.ipynb", script)  # the copies agree...
    script.write_text(script.read_text().replace("lr=0.1, epochs=500", "lr=0.1, epochs=5", 1))
    with pytest.raises(AssertionError, match="differ at cell"):  # ...until the script changes
        check_pair(tmp_path / "TestNN.ipynb", script)
    shutil.copy(NOTEBOOKS / "TestNN.py", tmp_path / "TestNN.py")
    notebook = nbformat.read(tmp_path / "TestNN.ipynb", as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell("print('a cell only the notebook has')"))
    nbformat.write(notebook, tmp_path / "TestNN.ipynb")
    with pytest.raises(AssertionError, match="cells"):
        check_pair(tmp_path / "TestNN.ipynb", script)


def test_pairing_check_fails_on_stored_outputs(tmp_path):
    notebook = nbformat.read(NOTEBOOKS / "TestNN.ipynb", as_version=4)
    code = next(cell for cell in notebook.cells if cell.cell_type == "code")
    code.outputs = [nbformat.v4.new_output("stream", text="hello\n")]
    code.execution_count = 1
    nbformat.write(notebook, tmp_path / "TestNN.ipynb")
    with pytest.raises(AssertionError, match="stored with outputs"):
        check_pair(tmp_path / "TestNN.ipynb", NOTEBOOKS / "TestNN.py")


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_top_to_bottom(name, tmp_path):
    pytest.importorskip("nbclient", reason="running the notebooks needs the dev extra (nbclient)")
    pytest.importorskip("ipykernel", reason="running the notebooks needs the dev extra (ipykernel)")
    if name in NEEDS and importlib.util.find_spec(NEEDS[name][0]) is None:
        pytest.skip(NEEDS[name][1])
    notebook = run_notebook(NOTEBOOKS / f"{name}.ipynb", cwd=tmp_path)
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 3  # its figures were drawn
    if name == "TestNN":  # the tutorial's epoch lines
        text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
        assert "Epoch  500 | Cost:" in text and "Training completed!" in text


def test_a_notebook_whose_framework_is_missing_is_skipped_with_the_reason(monkeypatch, tmp_path):
    """Without TensorFlow, TensorflowNN is reported as skipped, saying what to install; never passed."""
    monkeypatch.setitem(NEEDS, "TensorflowNN", ("no_such_module_here", NEEDS["TensorflowNN"][1]))
    with pytest.raises(pytest.skip.Exception, match=r"needs TensorFlow: pip install"):
        test_notebook_runs_top_to_bottom("TensorflowNN", tmp_path)


PLANTED = "nn.forward(X_test[:, :100])  # planted: 100 features where the network reads 784"


@pytest.mark.slow
def test_a_notebook_with_a_planted_error_fails_the_suite(tmp_path):
    """A copy of TestNN with a wrong shape planted after its data cell, run by this file's own
    notebook test in a child pytest: the run fails, naming the error."""
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    notebook = nbformat.read(NOTEBOOKS / "TestNN.ipynb", as_version=4)
    data_cell = next(i for i, cell in enumerate(notebook.cells) if "load_dataset(" in cell.source)
    # the network the cell uses, then the wrong shape; the cells after it never run
    notebook.cells[data_cell + 1:] = [
        nbformat.v4.new_code_cell("nn = NeuralNetwork(architecture=[784, 128, 64, 10], activation='relu')"),
        nbformat.v4.new_code_cell(PLANTED)]
    planted = tmp_path / "notebooks"
    planted.mkdir()
    nbformat.write(notebook, planted / "TestNN.ipynb")
    shutil.copy(NOTEBOOKS / "TestNN.py", planted / "TestNN.py")
    env = dict(os.environ, FASTSCRATCH_NOTEBOOK_DIR=str(planted))
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(Path(__file__)),
                             "-k", "test_notebook_runs_top_to_bottom and TestNN"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert "1 failed" in result.stdout
    assert "CellExecutionError" in result.stdout and "ValueError" in result.stdout, result.stdout[-3000:]
