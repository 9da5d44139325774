"""User data is sacred: what each command may replace, checkpoint directories of one run,
the model on disk before any upload, and SIGTERM ending a job the way Ctrl-C does.

Everything runs the real CLI (``hepspark.cli.main`` or a subprocess) on real files.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from hepspark.cli import main

QUICK = ["--width", "16", "--depth", "1", "--batch-size", "2000"]


def tree(path) -> dict[str, bytes]:
    """Every file under ``path`` with its bytes."""
    found = {}
    for parent, _, names in os.walk(path):
        for name in names:
            full = os.path.join(parent, name)
            found[os.path.relpath(full, path)] = open(full, "rb").read()
    return found


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("hepspark:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ---------------------------------------------------------------------- --overwrite
def test_convert_overwrite_never_deletes_the_folder_holding_the_input(spark, tmp_path, capsys):
    """The reported loss: `convert higgs --input data/higgs.csv --output data --overwrite`
    converted the file, then deleted data/ with the CSV and everything else in it."""
    from hepspark.data.higgs_csv import write_higgs_csv

    data = tmp_path / "data"
    write_higgs_csv(str(data / "higgs.csv"), 2000, progress=lambda _: None)
    (data / "notes.txt").write_text("my notes\n")
    before = tree(data)
    code = main(["convert", "higgs", "--input", str(data / "higgs.csv"), "--output", str(data),
                 "--overwrite", "--test-rows", "200"])
    assert code == 2
    line = one_error_line(capsys.readouterr().err)
    assert "is a directory hepspark did not write" in line and "notes.txt" in line
    assert tree(data) == before  # nothing deleted, nothing added
    assert [p.name for p in tmp_path.iterdir()] == ["data"]  # no sibling left either


def test_generate_overwrite_replaces_its_own_output_but_not_the_users(tmp_path, capsys):
    own = tmp_path / "jets"
    argv = ["generate", "jets", "--rows", "50", "--output", str(own)]
    assert main(argv) == 0
    first = tree(own)
    assert main([*argv, "--seed", "5", "--overwrite"]) == 0  # hepspark's own: replaced
    assert tree(own) != first and not [p for p in tmp_path.iterdir() if ".tmp" in p.name]
    capsys.readouterr()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "run2019.h5").write_bytes(b"\x89HDF irreplaceable")
    assert main(["generate", "jets", "--rows", "50", "--output", str(mine), "--overwrite"]) == 2
    assert "run2019.h5" in one_error_line(capsys.readouterr().err)
    assert tree(mine) == {"run2019.h5": b"\x89HDF irreplaceable"}
    # a file of the user's at a file output: refused before any work, untouched
    real = tmp_path / "HIGGS.npz"
    real.write_bytes(b"real data")
    assert main(["generate", "jets", "--rows", "50", "--output", str(real), "--overwrite"]) == 2
    assert "file hepspark did not write" in one_error_line(capsys.readouterr().err)
    assert real.read_bytes() == b"real data"


def test_pack_env_overwrite_never_replaces_a_file_it_did_not_write(tmp_path, capsys):
    archive = tmp_path / "env.tar.gz"
    archive.write_bytes(b"the cluster's only copy of the environment")
    assert main(["pack-env", "--output", str(archive), "--overwrite"]) == 2
    assert "file hepspark did not write" in one_error_line(capsys.readouterr().err)
    assert archive.read_bytes() == b"the cluster's only copy of the environment"


def test_an_unwritable_output_is_one_line_before_any_work(spark, tmp_path, capsys):
    from hepspark.data.higgs_csv import write_higgs_csv

    csv = tmp_path / "h.csv"
    write_higgs_csv(str(csv), 500, progress=lambda _: None)
    (tmp_path / "a-file").write_text("x")  # nothing can be created under a file, even as root
    for argv in (["convert", "higgs", "--input", str(csv), "--output",
                  str(tmp_path / "a-file" / "ds")],
                 ["generate", "higgs", "--rows", "10", "--output",
                  str(tmp_path / "a-file" / "h.csv")]):
        assert main(argv) == 2
        captured = capsys.readouterr()
        assert "not writable" in one_error_line(captured.err), captured.err
        assert "lines parsed" not in captured.out and "rows (" not in captured.out


# ------------------------------------------------------------ checkpoints of one run
def train(data, tmp_path, *extra) -> list[str]:
    return ["train", "higgs", "--data", data, *QUICK, "--experiment", "safety",
            "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", *extra]


def test_a_second_run_is_refused_in_the_first_runs_checkpoint_dir(higgs_dataset, tmp_path,
                                                                    capsys):
    ckpt = tmp_path / "ckpt"
    assert main(train(higgs_dataset, tmp_path, "--epochs", "1", "--checkpoint-dir",
                      str(ckpt))) == 0
    before = tree(ckpt)
    capsys.readouterr()
    # the same command again (no --resume): refused before any work, nothing touched
    assert main(train(higgs_dataset, tmp_path, "--epochs", "2", "--checkpoint-dir",
                      str(ckpt))) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"--checkpoint-dir {ckpt} holds checkpoints of another run (epoch-0001" in line
    assert f"--resume {ckpt}" in line
    assert tree(ckpt) == before  # mlflow_run.json not re-pointed, epoch-0001 not pruned
    # a restart launcher's command line continues the run it finds there
    assert main(train(higgs_dataset, tmp_path, "--epochs", "2", "--checkpoint-dir",
                      str(ckpt), "--resume-if-present")) == 0
    out = capsys.readouterr().out  # epoch 1 comes from the checkpoint, epoch 2 is trained
    assert "epoch 2/2" in out and "epochs run                 2/2" in out
    states = [json.load(open(ckpt / d / "state.json")) for d in sorted(os.listdir(ckpt))
              if d.startswith("epoch-")]
    assert [s["epoch"] for s in states] == [1, 2]
    assert len({s["run_token"] for s in states}) == 1 and states[0]["run_token"]


def test_an_unwritable_model_dir_is_refused_before_training(higgs_dataset, tmp_path, capsys):
    import mlflow

    (tmp_path / "a-file").write_text("x")  # nothing can be created under a file, even as root
    code = main(train(higgs_dataset, tmp_path, "--epochs", "1", "--model-dir",
                      str(tmp_path / "a-file" / "model")))
    assert code == 2
    captured = capsys.readouterr()
    assert "--model-dir" in one_error_line(captured.err) and "not writable" in captured.err
    assert "epoch 1/1" not in captured.out  # refused before training
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("safety")
    assert experiment is None or not client.search_runs([experiment.experiment_id])


def test_the_model_reaches_model_dir_before_the_upload(higgs_dataset, tmp_path):
    """The artifact store refuses every upload (its root lies under a file): training has
    happened, so the model must already be in --model-dir when the upload fails."""
    import mlflow

    from hepspark.config import TrainConfig
    from hepspark.models.config import DenseNetConfig
    from hepspark.models.keras_dense import MODEL_FILE
    from hepspark.tracking import Tracker
    from hepspark.train import train_higgs

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (tmp_path / "a-file").write_text("x")
    mlflow.MlflowClient(uri).create_experiment(
        "broken-store", artifact_location=f"file://{tmp_path / 'a-file' / 'artifacts'}")
    config = TrainConfig(data=higgs_dataset, epochs=1, batch_size=2000,
                         model=DenseNetConfig(depth=1, width=16))
    with pytest.raises(Exception):  # noqa: B017 - whatever the store raises
        train_higgs(config, Tracker(uri, "broken-store"), progress=lambda _: None,
                    model_dir=str(tmp_path / "model"))
    assert os.path.getsize(tmp_path / "model" / MODEL_FILE) > 0
    assert os.path.exists(tmp_path / "model" / "preprocessing.json")


# ------------------------------------------------------------------------- SIGTERM
def test_sigterm_mid_training_stops_like_ctrl_c_and_resume_continues(higgs_dataset, tmp_path):
    """Kubernetes, YARN and Slurm stop a job with SIGTERM: one line, exit 143, no
    temporary directory left, the MLflow run closed (not left RUNNING), and --resume
    continues from the last checkpoint."""
    import mlflow

    ckpt, scratch = tmp_path / "ckpt", tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch), "SPARK_LOCAL_IP": "127.0.0.1",
           "PYSPARK_PYTHON": sys.executable}
    cmd = [sys.executable, "-m", "hepspark.cli",
           *train(higgs_dataset, tmp_path, "--epochs", "50", "--checkpoint-dir", str(ckpt))]
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not (ckpt / "epoch-0001").exists():
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "no first checkpoint in time"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, err[-3000:]
    assert "SIGTERM" in one_error_line(err)
    assert "epoch 50/50" not in out
    assert [n for n in os.listdir(ckpt) if n.startswith(".")] == []  # no half checkpoint
    assert [n for n in os.listdir(scratch) if n.startswith("hepspark-")] == []
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    [run] = client.search_runs([client.get_experiment_by_name("safety").experiment_id])
    assert run.info.status in ("KILLED", "FAILED")
    done = max(int(d.split("-")[1]) for d in os.listdir(ckpt) if d.startswith("epoch-"))
    resumed = subprocess.run(
        [sys.executable, "-m", "hepspark.cli", *train(higgs_dataset, tmp_path, "--epochs",
                                                      str(done + 1), "--resume", str(ckpt))],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"epoch {done + 1}/{done + 1}" in resumed.stdout
    [run] = client.search_runs([client.get_experiment_by_name("safety").experiment_id])
    assert run.info.status == "FINISHED"
