"""SIGTERM and Ctrl-C are never lost: a stop that lands inside a finaliser (where Python
drops the KeyboardInterrupt, as happened under TensorFlow in CI) is raised again at the next
check, and the dropped one prints no traceback; also through the SIGINT handler a real
SparkContext installs. Each case runs in its own Python process, with a real signal."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

# A finaliser that is running when the SIGTERM's handler runs: the handler's
# KeyboardInterrupt is raised inside __del__, where Python can only drop it.
_PROGRAM = textwrap.dedent("""
    import os, signal
    from hepspark import stopping

    class Finalised:
        def __del__(self):
            os.kill(os.getpid(), signal.{signal})
            for _ in range(200_000):  # the handler runs at one of these jumps
                pass

    stopping.install()
    {after_install}
    obj = Finalised()
    del obj
    print("after the finaliser:", stopping.pending(), flush=True)
    try:
        for step in range(1000):
            {loop_body}
        print("the loop ran to its end", flush=True)
    except KeyboardInterrupt as exc:
        print(f"stopped at step {{step}}: {{exc!r}}", flush=True)
""")


def _run(loop_body: str, sig: str = "SIGTERM", after_install: str = "",
         timeout: float = 60) -> subprocess.CompletedProcess:
    program = _PROGRAM.format(loop_body=loop_body, signal=sig, after_install=after_install)
    return subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("sig, raised", [("SIGTERM", "KeyboardInterrupt('signal SIGTERM')"),
                                         ("SIGINT", "KeyboardInterrupt()")])
def test_a_stop_dropped_in_a_finaliser_is_raised_at_the_next_check(sig, raised):
    proc = _run("stopping.check()", sig)
    assert proc.returncode == 0, proc.stderr
    # the finaliser swallowed the interrupt (the program went on after it) ...
    assert f"after the finaliser: {sig}" in proc.stdout
    # ... and the loop's first check raised it again (Ctrl-C as Python's own, "interrupted")
    assert f"stopped at step 0: {raised}" in proc.stdout
    # the dropped one is not printed as "Exception ignored ... Traceback"
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr


def test_a_handler_installed_later_still_runs_and_the_stop_is_kept():
    """As PySpark's: a new SparkContext replaces Ctrl-C's handler with one that cancels
    the Spark jobs and raises KeyboardInterrupt."""
    other = textwrap.dedent("""
        def cancel_jobs(signum, frame):
            print("jobs cancelled", flush=True)
            raise KeyboardInterrupt()
        signal.signal(signal.SIGINT, cancel_jobs)
        stopping.keep_replaced_handlers()
    """)
    proc = _run("stopping.check()", "SIGINT", other)
    assert proc.returncode == 0, proc.stderr
    assert "jobs cancelled" in proc.stdout
    assert "stopped at step 0: KeyboardInterrupt()" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_the_sparkcontexts_ctrl_c_handler_keeps_the_stop():
    """A real local SparkContext, created through hepspark.session after the CLI's
    install(): its SIGINT handler runs (PySpark's own), and the stop is kept."""
    after = ("from hepspark.session import get_spark\n"
             "spark = get_spark('stopping-test', master='local[1]')\n"
             "handler = signal.getsignal(signal.SIGINT)\n"
             "print('kept:', getattr(handler, 'keeps_stops', False), flush=True)")
    proc = _run("stopping.check()", "SIGINT", after, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "kept: True" in proc.stdout
    assert "stopped at step 0: KeyboardInterrupt()" in proc.stdout


def test_an_ignored_ctrl_c_stays_ignored():
    program = textwrap.dedent("""
        import signal
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        from hepspark import stopping
        stopping.install()
        print(signal.getsignal(signal.SIGINT) == signal.SIG_IGN)
    """)
    proc = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          timeout=60)
    assert proc.stdout.strip() == "True", proc.stderr


def test_without_a_check_the_dropped_stop_is_lost():
    """The control: the same program with a loop that never checks runs to its end. It is
    what a Keras fit did before its callbacks checked."""
    proc = _run("pass")
    assert proc.returncode == 0, proc.stderr
    assert "after the finaliser: SIGTERM" in proc.stdout
    assert "the loop ran to its end" in proc.stdout


def test_other_unraisable_errors_are_still_printed():
    program = textwrap.dedent("""
        from hepspark import stopping

        class Broken:
            def __del__(self):
                raise RuntimeError("a finaliser's own error")

        stopping.install()
        obj = Broken()
        del obj
    """)
    proc = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          timeout=60)
    assert "Exception ignored" in proc.stderr and "a finaliser's own error" in proc.stderr
