"""Traps a new user of the command line fell into, one test each: wrong words, missing choices,
two spellings of one option, silent folders, plots that mislead.  In process (``cli.main``) where
that is quick; the figures are checked by their axes, drawn on Agg."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from fastscratch import NeuralNetwork, datasets
from fastscratch.tools import cli

QUICK = ["--epochs", "1", "--batch-size", "64", "--hidden", "16", "--no-progress"]


@pytest.fixture
def no_tensorflow_probe(monkeypatch):
    """``info`` without importing TensorFlow (seconds, and it stays in the process): not what these test."""
    from fastscratch.tools import system

    monkeypatch.setattr(system, "tensorflow_gpus", lambda: "TensorFlow not probed here")


# 3 ---------------------------------------------------------------------------------------------
def test_plural_is_singular_only_for_one():
    from fastscratch._validation import plural

    assert [plural(n, "epoch") for n in (0, 1, 2, 1000)] == ["0 epochs", "1 epoch", "2 epochs", "1,000 epochs"]
    assert plural(1, "class", "classes") == "1 class" and plural(3, "class", "classes") == "3 classes"


def test_one_epoch_is_said_in_the_singular(capsys):
    assert cli.main(["train", *QUICK]) == 0
    out = capsys.readouterr().out
    assert ", 1 epoch, backend" in out and "1 epochs" not in out
