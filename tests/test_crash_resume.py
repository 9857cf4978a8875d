"""SIGKILL at any moment: `fastscratch train --checkpoint --resume`, killed again and again (during
epochs, and in the middle of writing a checkpoint), ends with exactly the state of a run never killed.

Each child is the real command line in a fresh process.  Kills land at random moments after the
child has reported a random number of epochs; in "stall" attempts the child's N-th checkpoint write
stops half way (np.savez wrapped to write half the bytes, then wait) and is killed there.  After
every kill the checkpoint on disk must load, and must hold a whole number of epochs.
"""

import json
import os
import random
import select
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from fastscratch import NeuralNetwork, available_backends
from fastscratch.io.model_files import load_checkpoint

pytestmark = pytest.mark.slow

EPOCHS = 30  # more than the kills can let through, so the last run still has work
KILLS = 9  # per backend: every third in the middle of a checkpoint write (3), the rest during training (6)

# The child: optionally stall inside its N-th checkpoint write, then run the command line.
HARNESS = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    stall_at = int(os.environ.get("STALL_AT_SAVE", "0"))
    if stall_at:
        real_savez, calls = np.savez, [0]
        def stalling_savez(f, **arrays):
            calls[0] += 1
            if calls[0] != stall_at:
                return real_savez(f, **arrays)
            import io
            buffer = io.BytesIO()
            real_savez(buffer, **arrays)
            data = buffer.getvalue()
            f.write(data[: len(data) // 2])
            f.flush()
            os.fsync(f.fileno())
            print("STALLED-IN-SAVE", flush=True)
            time.sleep(600)
        np.savez = stalling_savez
    from fastscratch.tools.cli import main
    sys.exit(main(sys.argv[1:]))
""")


class Child:
    """A training subprocess whose stdout is read line by line with a timeout."""

    def __init__(self, harness, args, cwd, stall_at=0):
        env = {**os.environ, "STALL_AT_SAVE": str(stall_at), "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([sys.executable, str(harness), *args], cwd=cwd, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.buffer = b""
        self.lines: list[str] = []

    def wait_for(self, predicate, timeout=120.0) -> bool:
        """Read until a line satisfies ``predicate`` (True) or the child exits (False)."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while True:
            while b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                self.lines.append(line.decode(errors="replace"))
                if predicate(self.lines[-1]):
                    return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.proc.kill()
                raise AssertionError("child timed out; output:\n" + "\n".join(self.lines))
            ready, _, _ = select.select([fd], [], [], remaining)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    self.proc.wait()
                    return False
                self.buffer += chunk

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc.stdout.close()

    def finish(self) -> int:
        self.wait_for(lambda line: False)
        self.proc.stdout.close()
        return self.proc.wait()


def _comparable(path):
    saved = load_checkpoint(path, NeuralNetwork)
    net, record, best = saved.net, saved.record, saved.best
    history = {k: v for k, v in net.history.to_dict().items() if k not in ("seconds", "samples_per_second")}
    state = {kind: arrays for kind, arrays in net.optimizer.state.items()}
    return net, record, history, state


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
@pytest.mark.parametrize("backend, options", [
    ("numba", ["--optimizer", "adam", "--lr", "0.001"]),  # the fused, jitted epoch
    ("numpy", ["--optimizer", "momentum", "--dropout", "0.2"]),  # dropout draws from the saved generator
])
def test_sigkill_at_random_moments_then_resume_gives_the_uninterrupted_result(tmp_path, backend, options):
    if backend not in available_backends():
        pytest.skip(f"the {backend} backend is not installed")
    harness = tmp_path / "harness.py"
    harness.write_text(HARNESS)
    args = ["train", "--epochs", str(EPOCHS), "--batch-size", "32", "--backend", backend, "--seed", "0",
            "--log-every", "1", "--no-progress", *options]

    reference = Child(harness, [*args, "--checkpoint", "reference.npz"], tmp_path)
    assert reference.finish() == 0, "\n".join(reference.lines)

    rng = random.Random(20261125)  # fixed, so a failure can be replayed
    run = ["--checkpoint", "run.npz", "--resume"]
    killed_in_training, killed_in_save, epochs_seen = 0, 0, []
    for attempt in range(KILLS):
        stall = attempt % 3 == 2
        child = Child(harness, [*args, *run], tmp_path, stall_at=rng.randint(1, 2) if stall else 0)
        if stall:
            if not child.wait_for(lambda line: line == "STALLED-IN-SAVE"):
                pytest.fail("the run finished before its stalled save:\n" + "\n".join(child.lines))
            half_written = [f for f in os.listdir(tmp_path) if f.startswith(".run.npz.") and f.endswith(".tmp")]
            assert half_written, "the stalled save should be writing a temporary file"
            child.kill()
            killed_in_save += 1
        else:
            wanted = rng.randint(1, 2)
            seen = [0]

            def counted(line):
                seen[0] += line.startswith("Epoch")
                return seen[0] == wanted

            if not child.wait_for(counted):
                pytest.fail("the run finished before it could be killed:\n" + "\n".join(child.lines))
            time.sleep(rng.uniform(0.0, 0.05))  # somewhere in the next epoch or its save
            child.kill()
            killed_in_training += 1
        # whatever the kill interrupted, the checkpoint on disk is whole and readable
        if (tmp_path / "run.npz").exists():
            epochs_seen.append(len(NeuralNetwork.load(tmp_path / "run.npz").history))
        else:  # killed before its first save completed: nothing yet to lose
            assert not epochs_seen
            epochs_seen.append(0)

    final = Child(harness, [*args, *run], tmp_path)
    assert final.finish() == 0, "\n".join(final.lines)
    assert any(line.startswith("Resuming from run.npz") for line in final.lines)
    # no temporary file of a killed writer is left once a later save has run
    assert sorted(f for f in os.listdir(tmp_path) if f.endswith(".npz") or f.endswith(".tmp")) == \
        ["reference.npz", "run.npz"]

    expected, expected_record, expected_history, expected_state = _comparable(tmp_path / "reference.npz")
    got, record, history, state = _comparable(tmp_path / "run.npz")
    for a, b in zip(got.parameters, expected.parameters, strict=True):
        np.testing.assert_array_equal(a, b)
    for kind in expected_state:
        for a, b in zip(state[kind], expected_state[kind], strict=True):
            np.testing.assert_array_equal(a, b)
    assert got.optimizer.iterations == expected.optimizer.iterations
    assert json.dumps(got.rng.bit_generator.state) == json.dumps(expected.rng.bit_generator.state)
    assert history == expected_history and len(history["epoch"]) == EPOCHS
    assert record["finished"] == expected_record["finished"] == "completed"
    # the kills really landed part way through: progress was made and kept between them
    assert killed_in_training == 6 and killed_in_save == 3
    assert epochs_seen == sorted(epochs_seen) and 0 < epochs_seen[-1] < EPOCHS, epochs_seen
    print(f"{backend}: {killed_in_training + killed_in_save} SIGKILLs survived ({killed_in_save} mid-save); "
          f"epochs on disk after each: {epochs_seen}")
