"""hepspark pack-env on a small real venv with hepspark installed editable, as `make
install` does: the archive must hold hepspark as a regular install that imports from the
unpacked directory, never the editable finder pointing at the checkout."""
from __future__ import annotations

import os
import subprocess
import sys
import tarfile

import pytest

from hepspark.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def editable_venv(tmp_path_factory):
    venv = tmp_path_factory.mktemp("venv") / "v"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps",
           "--no-build-isolation", "--no-index"]
    # setuptools (+ wheel) from the project venv, to build offline: the stack's own pins
    subprocess.run([*pip, "-e", ROOT], check=True, capture_output=True,
                   env={**os.environ, "PYTHONPATH": os.pathsep.join(
                       p for p in sys.path if p.endswith("site-packages"))})
    return venv


def test_pack_env_replaces_the_editable_install_with_a_wheel(editable_venv, tmp_path, capsys):
    site = next((editable_venv / "lib").glob("python3*/site-packages"))
    assert list(site.glob("__editable__*hepspark*"))  # the trap is there to begin with
    out = tmp_path / "env.tar.gz"
    assert main(["pack-env", "--venv", str(editable_venv), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "[pack-env] building the hepspark wheel" in printed
    assert "left out" in printed and "--archives env.tar.gz#env" in printed
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".part")]
    with tarfile.open(out) as archive:
        names = archive.getnames()
        assert not [n for n in names if "__editable__" in n]
        assert any(n.endswith("site-packages/hepspark/cli/__init__.py") for n in names)
        archive.extractall(tmp_path / "env")
    # The unpacked env imports hepspark from itself, run from elsewhere without PYTHONPATH.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run(
        [str(tmp_path / "env" / "bin" / "python"), "-c",
         "import hepspark, sys; print(hepspark.__file__); print(sys.prefix)"],
        capture_output=True, text=True, cwd="/", env=env,
    )
    assert result.returncode == 0, result.stderr
    module, prefix = result.stdout.split()
    assert module.startswith(str(tmp_path / "env")) and prefix == str(tmp_path / "env")
    # An existing archive is not replaced without --overwrite.
    assert main(["pack-env", "--venv", str(editable_venv), "--output", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
