"""A checkpoint directory that the executors write but the driver cannot see (no shared
filesystem) is refused before training. The executors' Python workers run in their own
mount namespace with a private tmpfs over the directory: what they write there never
reaches the driver, as on two machines without a shared volume."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

PROBE = textwrap.dedent("""
    import sys
    from hepspark.backends.base import check_shared_directory
    from hepspark.session import get_spark

    spark = get_spark("probe-test", master="local[2]")
    try:
        check_shared_directory(spark, sys.argv[1], 2)
        print("SHARED")
    except ValueError as exc:
        print("REFUSED", exc)
    finally:
        spark.stop()
""")


def run_probe(tmp_path, python: str, directory) -> str:
    env = {**os.environ, "PYSPARK_PYTHON": python, "SPARK_LOCAL_IP": "127.0.0.1"}
    done = subprocess.run([sys.executable, "-c", PROBE, str(directory)], env=env,
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_the_driver_sees_what_executors_write_on_a_shared_filesystem(tmp_path):
    out = run_probe(tmp_path, sys.executable, tmp_path / "ckpt")
    assert "SHARED" in out
    assert os.listdir(tmp_path / "ckpt") == []  # the probe files are removed


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                    reason="a private mount namespace for the executors needs root and unshare")
def test_executors_writing_where_the_driver_cannot_see_are_refused(tmp_path):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    wrapper = tmp_path / "python-elsewhere"
    wrapper.write_text(
        "#!/bin/sh\n"
        f"exec unshare -m sh -c 'mount -t tmpfs none {ckpt} && exec \"$0\" \"$@\"' "
        f"{sys.executable} \"$@\"\n")
    wrapper.chmod(0o755)
    out = run_probe(tmp_path, str(wrapper), ckpt)
    assert "REFUSED" in out, out
    assert f"--checkpoint-dir {ckpt}: the executors' files there do not reach the driver" in out
    assert "wrote it, but the driver does not see the file" in out
    assert "filesystem the driver and every executor share" in out
    assert os.listdir(ckpt) == []
