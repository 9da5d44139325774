"""``hepspark pack-env``: this virtual environment as a relocatable archive for executors.

    hepspark pack-env --output env.tar.gz
    PYSPARK_PYTHON=./env/bin/python spark-submit --archives env.tar.gz#env ... \\
        spark_jobs/train_higgs.py --data ...

Built with venv-pack 0.2.0 (its ``Env``/``Packer``: shebangs and ``pyvenv.cfg`` are
rewritten so that the unpacked ``env/`` works wherever YARN/Kubernetes/standalone put it).

Two traps handled here:

- hepspark itself is usually an editable install (``pip install -e .``, PEP 660): venv-pack
  0.2.0 does not see PEP 660 editables (it only checks ``.pth`` lines that are paths) and
  would pack the ``__editable__`` finder, which imports from the *source checkout's
  absolute path* - missing on other machines, or, worse, present with other code. So the
  editable files are left out and a wheel of the project, built from the checkout now, is
  put in their place.
- A venv does not contain the Python interpreter: ``env/bin/python`` links to the base
  interpreter (here ``/root/.pyenv/versions/3.11.7/bin/python3.11``), which must exist at
  the same path on every executor (``--python-prefix`` rewrites that path for machines
  where it differs). The Docker image in ``deploy/docker`` has it.
"""
from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable

from hepspark.data import storage
from hepspark.progress import Progress

PROJECT = "hepspark"


def project_root() -> str:
    """The checkout holding setup.py (the package's parent directory)."""
    import hepspark

    root = os.path.dirname(os.path.dirname(os.path.abspath(hepspark.__file__)))
    if not os.path.exists(os.path.join(root, "setup.py")):
        raise FileNotFoundError(f"no setup.py in {root}: cannot build the hepspark wheel")
    return root


def build_wheel(directory: str, python: str = sys.executable) -> str:
    """A wheel of the project checkout, built into ``directory`` (no dependencies).

    Built from a copy of the sources in ``directory``: pip builds a local project in its
    tree, where setuptools reuses ``build/`` and would ship modules deleted since."""
    source = os.path.join(directory, "source")
    root = project_root()
    os.makedirs(source)
    shutil.copy2(os.path.join(root, "setup.py"), source)
    for name in ("pyproject.toml", "README.md", "setup.cfg"):
        if os.path.exists(os.path.join(root, name)):
            shutil.copy2(os.path.join(root, name), source)
    shutil.copytree(os.path.join(root, PROJECT), os.path.join(source, PROJECT),
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    result = subprocess.run(
        [python, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", directory, source],
        capture_output=True, text=True,
    )
    wheels = glob.glob(os.path.join(directory, f"{PROJECT}-*.whl"))
    if result.returncode != 0 or not wheels:
        raise RuntimeError(f"building the {PROJECT} wheel failed:\n{result.stderr[-2000:]}")
    return wheels[0]


def _is_editable_file(target: str) -> bool:
    name = os.path.basename(target)
    parts = target.split(os.sep)
    return (name.startswith(f"__editable__.{PROJECT}-")
            or name.startswith(f"__editable___{PROJECT}_")
            or any(p.startswith(f"{PROJECT}-") and p.endswith((".dist-info", ".egg-link"))
                   for p in parts))


def pack_env(
    output: str,
    venv: str | None = None,
    python_prefix: str | None = None,
    overwrite: bool = False,
    progress: Callable[[str], None] = print,
) -> dict:
    """Write ``venv`` (default: the running one) to ``output`` (.tar.gz, .tgz, .zip),
    with hepspark as a regular (wheel) install. Atomic: written to a temporary file next to
    ``output`` and renamed at the end. Returns a summary."""
    from venv_pack.core import Env, File, Packer
    from venv_pack.formats import archive

    venv = os.path.abspath(venv or sys.prefix)
    output = os.path.abspath(output)
    storage.check_new_output(output, overwrite)
    if output.endswith((".tar.gz", ".tgz")):
        fmt = "tar.gz"
    elif output.endswith(".zip"):
        fmt = "zip"
    else:
        raise ValueError(f"--output must end in .tar.gz, .tgz or .zip, got {output}")
    start = time.perf_counter()
    env = Env(venv)
    site_packages = os.path.join(env._context.py_lib, "site-packages")
    files = [f for f in env.files if not _is_editable_file(f.target)]
    dropped = len(env.files) - len(files)
    with tempfile.TemporaryDirectory(prefix="hepspark-pack-") as work:
        progress(f"[pack-env] building the {PROJECT} wheel from {project_root()}")
        wheel = build_wheel(work)  # pure Python: any interpreter with setuptools + wheel
        unpacked = os.path.join(work, "wheel")
        with zipfile.ZipFile(wheel) as handle:
            handle.extractall(unpacked)
        for root, _, names in os.walk(unpacked):
            for name in names:
                source = os.path.join(root, name)
                rel = os.path.relpath(source, unpacked)
                files.append(File(source, os.path.join(site_packages, rel)))
        total_bytes = sum(os.path.getsize(f.source) for f in files
                          if os.path.isfile(f.source) and not os.path.islink(f.source))
        progress(f"[pack-env] packing {len(files):,d} files ({total_bytes / 1e9:.2f} GB) of "
                 f"{venv} into {output}" + (f" (left out {dropped} editable-install "
                                            "file(s), put the wheel in)" if dropped else ""))
        directory = os.path.dirname(output)
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=os.path.basename(output) + ".", suffix=".part",
                                   dir=directory)
        try:
            with os.fdopen(fd, "wb") as handle, archive(handle, fmt) as arc, \
                    Progress("pack-env", total_bytes / 1e6, "MB", emit=progress) as bar:
                packer = Packer(env._context, arc, python_prefix)
                for f in files:
                    packer.add(f)
                    if os.path.isfile(f.source) and not os.path.islink(f.source):
                        bar.advance(os.path.getsize(f.source) / 1e6)
                packer.finish()
            storage.publish_file(tmp, output, "pack-env", overwrite)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
            raise
    summary = {"output": output, "files": len(files), "input_bytes": total_bytes,
               "archive_bytes": os.path.getsize(output),
               "seconds": time.perf_counter() - start}
    progress(f"[pack-env] wrote {output}: {summary['archive_bytes'] / 1e6:,.0f} MB, "
             f"{summary['seconds']:.0f} s")
    return summary
