"""The console script's SIGINT handler: a Ctrl-C that lands in a garbage-collector callback (JAX registers
one) is delivered again instead of being lost."""

import gc
import os
import signal
import sys
import time

import pytest

from gsiirl.cli.interrupts import interrupt_handler


def _collect_with_a_sigint_inside_a_gc_callback(handler):
    """Run a collection whose gc callback receives a real SIGINT while it runs; return the errors Python
    reported as ignored (sys.unraisablehook) during it."""
    ignored = []
    sent = []

    def callback(phase, info):
        if phase == "start" and not sent:
            sent.append(True)
            os.kill(os.getpid(), signal.SIGINT)
            sum(range(1000))  # Python code: the pending signal's handler runs here, inside the callback

    previous_handler = signal.signal(signal.SIGINT, handler)
    previous_hook = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: ignored.append(unraisable.exc_type)
    gc.callbacks.append(callback)
    try:
        gc.collect()
    finally:
        gc.callbacks.remove(callback)
        sys.unraisablehook = previous_hook
    return ignored, previous_handler


def test_python_loses_an_interrupt_raised_inside_a_gc_callback():
    """The hazard itself, with Python's default handler: the KeyboardInterrupt is ignored."""
    ignored, previous = _collect_with_a_sigint_inside_a_gc_callback(signal.default_int_handler)
    try:
        assert ignored == [KeyboardInterrupt]
        time.sleep(0.3)  # and nothing arrives later
    finally:
        signal.signal(signal.SIGINT, previous)


def test_interrupt_inside_a_gc_callback_arrives_after_it():
    ignored, previous = _collect_with_a_sigint_inside_a_gc_callback(interrupt_handler)
    try:
        assert ignored == []
        with pytest.raises(KeyboardInterrupt):
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline:
                time.sleep(0.01)
    finally:
        signal.signal(signal.SIGINT, previous)


def test_interrupt_elsewhere_raises_at_once():
    with pytest.raises(KeyboardInterrupt):
        interrupt_handler(signal.SIGINT, sys._getframe())


def test_the_console_script_runs_multiprocessing_finalizers_before_ending_an_interrupted_run(monkeypatch):
    """After an interrupt the console script ends with os._exit(130) (a normal shutdown can crash inside
    XLA); before that it runs what multiprocessing's atexit hook would (its finalizers of priority >= 0:
    the worker pool's semaphores are unlinked, not reported as leaked). A finished run returns normally."""
    from multiprocessing import util

    import importlib

    from gsiirl.cli import interrupts

    cli = importlib.import_module("gsiirl.cli.main")  # the module (gsiirl.cli.main is also a function's name)

    calls = []

    class Exited(Exception):
        pass

    def exit_now(code):
        calls.append(("exit", code))
        raise Exited

    monkeypatch.setattr(util, "_run_finalizers", lambda minpriority=None: calls.append(("finalizers", minpriority)))
    monkeypatch.setattr(os, "_exit", exit_now)
    monkeypatch.setattr(interrupts, "install_interrupt_handler", lambda: None)  # keep pytest's SIGINT handler

    def interrupted():
        raise SystemExit(cli.EXIT_INTERRUPTED)

    monkeypatch.setattr(cli, "app", interrupted)
    with pytest.raises(Exited):
        cli.console()
    assert calls == [("finalizers", 0), ("exit", cli.EXIT_INTERRUPTED)]
    calls.clear()
    monkeypatch.setattr(cli, "app", lambda: None)
    cli.console()
    assert calls == []
    monkeypatch.setattr(cli, "app", lambda: (_ for _ in ()).throw(SystemExit(2)))
    with pytest.raises(SystemExit):
        cli.console()
    assert calls == []
