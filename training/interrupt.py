"""Ctrl-C during training ends it gracefully: the epoch running finishes, the best weights are kept and
exported as usual. A second Ctrl-C aborts at once (nothing is written)."""

from __future__ import annotations

import signal
import sys
import threading


def stop_on_ctrl_c(prog: str):
    """A Keras callback: the first SIGINT asks training to stop after the current epoch."""
    import keras

    class StopOnCtrlC(keras.callbacks.Callback):
        """Turns the first Ctrl-C into ``stop_training`` at the end of the epoch (then export runs)."""

        def __init__(self) -> None:
            super().__init__()
            self.asked = False
            self._previous = None

        def _handler(self, signum, frame) -> None:
            if self.asked:  # the second one: the user means it
                signal.signal(signal.SIGINT, self._previous or signal.default_int_handler)
                raise KeyboardInterrupt
            self.asked = True
            print(f"\n{prog}: Ctrl-C: stopping after this epoch and keeping the best one so far "
                  "(Ctrl-C again aborts without saving)", file=sys.stderr, flush=True)

        def on_train_begin(self, logs=None) -> None:
            if threading.current_thread() is threading.main_thread():
                self._previous = signal.signal(signal.SIGINT, self._handler)

        def on_epoch_end(self, epoch, logs=None) -> None:
            if self.asked:
                self.model.stop_training = True

        def on_train_end(self, logs=None) -> None:
            if self._previous is not None:
                signal.signal(signal.SIGINT, self._previous)
                self._previous = None

    return StopOnCtrlC()
