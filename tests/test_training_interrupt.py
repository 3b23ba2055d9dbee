"""Ctrl-C during training: the epoch running finishes and training ends normally (export then runs on
the best weights); a second Ctrl-C aborts."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from training.interrupt import stop_on_ctrl_c  # noqa: E402


def _model():
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    m.compile(optimizer="adam", loss="mse")
    return m


class CtrlC(keras.callbacks.Callback):
    """Presses Ctrl-C (a real SIGINT to this process) during the given epochs."""

    def __init__(self, epochs):
        super().__init__()
        self.epochs = set(epochs)

    def on_epoch_begin(self, epoch, logs=None):
        if epoch in self.epochs:
            os.kill(os.getpid(), signal.SIGINT)


def test_first_ctrl_c_stops_after_the_epoch_and_keeps_the_handler_as_it_was(capsys):
    x, y = np.ones((32, 4), np.float32), np.ones((32, 1), np.float32)
    before = signal.getsignal(signal.SIGINT)
    hist = _model().fit(x, y, epochs=10, verbose=0, callbacks=[CtrlC([2]), stop_on_ctrl_c("train-x")])
    assert len(hist.history["loss"]) == 3  # epochs 0, 1 and the one interrupted
    assert "train-x: Ctrl-C: stopping after this epoch" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is before


def test_a_second_ctrl_c_aborts():
    x, y = np.ones((32, 4), np.float32), np.ones((32, 1), np.float32)
    with pytest.raises(KeyboardInterrupt):
        _model().fit(x, y, epochs=10, verbose=0, callbacks=[CtrlC([1, 1]), CtrlC([1]), stop_on_ctrl_c("t")])
