"""Stopping a command with SIGTERM (how Kubernetes, YARN and Slurm stop a job) the way
Ctrl-C does: as a ``KeyboardInterrupt``, so every ``except KeyboardInterrupt``/``finally``
clean-up runs, and never lost on the way.

Python runs a signal handler in the main thread between two bytecodes, wherever that
thread is. When it is inside a finaliser (a ``__del__`` or a weakref callback: TensorFlow
runs them for its concrete functions while Keras trains), the ``KeyboardInterrupt`` the
handler raises cannot leave it: Python prints it as "Exception ignored in ..." with a
traceback and drops it, and the job trains on to its last epoch (a CI run saw a 200-epoch
job SIGTERM'd after epoch 3 run all 200). So the handler also keeps the stop it was asked
for, a finaliser's dropped stop is not printed, and the training loops call :func:`check`
at each step and epoch end, which raises the kept stop again. The command's top level
calls :func:`clear` once the stop has reached it. Ctrl-C (SIGINT) is kept the same way,
also through the handler a SparkContext installs for it (:func:`keep_replaced_handlers`).

>>> install()                    # the CLI's main(), once
>>> check()                      # in a loop's step or epoch end: raises a pending stop
>>> clear()                      # where the KeyboardInterrupt was caught for good
"""
from __future__ import annotations

import signal
import sys
import threading

_pending: str | None = None  # the name of the signal that asked for a stop not yet seen
_installed = False
_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _interrupt(name: str) -> KeyboardInterrupt:
    # Ctrl-C stays Python's plain KeyboardInterrupt ("interrupted"); SIGTERM names itself
    return KeyboardInterrupt() if name == "SIGINT" else KeyboardInterrupt(f"signal {name}")


def _raise(signum, frame) -> None:
    raise _interrupt(signal.Signals(signum).name)


def _keeping(handler):
    """``handler`` (:func:`_raise`, or one someone else installed: PySpark's SIGINT handler
    cancels the Spark jobs, then raises KeyboardInterrupt) with the stop kept first."""
    def stop(signum, frame) -> None:
        global _pending
        _pending = signal.Signals(signum).name
        handler(signum, frame)

    stop.keeps_stops = True  # type: ignore[attr-defined]
    return stop


def _unraisable(unraisable) -> None:
    """A stop raised inside a finaliser is dropped there: say nothing (:func:`check`
    raises it again where it can leave); everything else goes to Python's own hook."""
    if (_pending is not None and isinstance(unraisable.exc_value, KeyboardInterrupt)
            and str(unraisable.exc_value) == str(_interrupt(_pending))):
        return
    sys.__unraisablehook__(unraisable)


def install() -> None:
    """Route SIGTERM to :class:`KeyboardInterrupt` and keep it, and Ctrl-C's too (main
    thread only; a no-op elsewhere). A handler someone else installed for either (PySpark's
    for SIGINT) still runs, with the stop kept."""
    global _installed
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in _SIGNALS:
        current = signal.getsignal(signum)
        if getattr(current, "keeps_stops", False) or current == signal.SIG_IGN:
            continue  # kept already; or ignored (a background job's Ctrl-C), which stays so
        own = callable(current) and current is not signal.default_int_handler
        signal.signal(signum, _keeping(current if own else _raise))
    sys.unraisablehook = _unraisable
    _installed = True


def keep_replaced_handlers() -> None:
    """After a library replaced a handler (a new SparkContext replaces SIGINT's with one
    that cancels its jobs), keep the stops through it again. A no-op unless
    :func:`install` ran (the CLI's ``main``): a library user's handlers are theirs."""
    if _installed:
        install()


def pending() -> str | None:
    """The signal (``"SIGTERM"``) whose stop has not reached the top level yet, or None."""
    return _pending


def check() -> None:
    """Raise the pending stop again (a finaliser may have dropped it). Only the main
    thread raises: it is the one a signal interrupts."""
    if _pending is not None and threading.current_thread() is threading.main_thread():
        raise _interrupt(_pending)


def clear() -> None:
    """The stop reached the command's top level: forget it."""
    global _pending
    _pending = None
