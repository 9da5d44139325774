"""The command line and the spark-submit job, run as a user would."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from hepspark.cli import main

VENV_BIN = os.path.dirname(sys.executable)


def run(args, cwd, env_extra=None, timeout=600):
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable,
           "PYSPARK_DRIVER_PYTHON": sys.executable, **(env_extra or {})}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("command", [[], ["generate", "higgs"], ["convert", "higgs"],
                                     ["train", "higgs"], ["evaluate", "higgs"]])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: hepspark" in capsys.readouterr().out


def test_bad_optimizer_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "higgs", "--data", "x", "--optimizer", "adamw"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'adamw'" in capsys.readouterr().err


def test_missing_dataset_is_a_clear_error(tmp_path, capsys):
    code = main(["train", "higgs", "--data", str(tmp_path / "nope"), "--no-tracking"])
    assert code == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "hepspark convert higgs" in err


def test_training_stopped_part_way_is_one_line_and_exit_4(tmp_path, capsys, monkeypatch):
    # The CLI's side only: how a failed distributed run is reported (the real failures are
    # in tests/backends/test_horovod_backend.py and, through this path, test_fault_kill.py).
    from hepspark import train
    from hepspark.backends.base import training_failed
    from hepspark.cli import EXIT_TRAINING_FAILED

    def fail(config, *args, **kwargs):
        raise training_failed("Horovod training failed: a rank died or could not start",
                              config, RuntimeError("gloo: connection closed by peer"))

    monkeypatch.setattr(train, "train_higgs", fail)
    code = main(["train", "higgs", "--data", str(tmp_path), "--no-tracking",
                 "--checkpoint-dir", str(tmp_path / "ckpt")])
    assert code == EXIT_TRAINING_FAILED == 4
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("hepspark: error: Horovod training failed")
    assert f"--resume {tmp_path / 'ckpt'}" in err and "connection closed by peer" in err


def test_generate_convert_train_evaluate_from_the_cli(spark, tmp_path, capsys):
    csv = str(tmp_path / "h.csv.gz")
    assert main(["generate", "higgs", "--rows", "8000", "--output", csv, "--seed", "3"]) == 0
    assert main(["generate", "higgs", "--rows", "8000", "--output", csv]) == 2  # exists
    data = str(tmp_path / "higgs")
    assert main(["convert", "higgs", "--input", csv, "--output", data,
                 "--test-fraction", "0.25"]) == 0
    out = capsys.readouterr().out
    assert "test         2,000 rows" in out and "MB/s" in out
    config = tmp_path / "run.yaml"
    config.write_text("optimizer: adamax\nepochs: 3\nmodel:\n  width: 32\n  depth: 2\n")
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert main(["train", "higgs", "--data", data, "--config", str(config), "--epochs", "2",
                 "--tracking-uri", tracking, "--model-dir", str(tmp_path / "model")]) == 0
    out = capsys.readouterr().out
    assert "epoch 2/2" in out and "epoch 3/3" not in out  # the flag overrides the file
    assert "optimizer adamax" in out and "2x32 tanh" in out
    assert main(["evaluate", "higgs", "--model", str(tmp_path / "model"), "--data", data]) == 0
    assert "test AUC" in capsys.readouterr().out


def test_default_spark_submit_job_end_to_end(tmp_path):
    """`spark-submit spark_jobs/train_higgs.py` with no data: generate, convert, train, log."""
    job = os.path.join(os.path.dirname(__file__), "..", "spark_jobs", "train_higgs.py")
    cmd = [os.path.join(VENV_BIN, "spark-submit"), "--master", "local[2]", job,
           "--demo-rows", "20000", "--epochs", "2"]
    env = {"HEPSPARK_CACHE": str(tmp_path / "cache"), "MLFLOW_TRACKING_URI": ""}
    result = run(cmd, cwd=tmp_path, env_extra=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "[demo] generating 20,000" in result.stdout
    assert "test AUC" in result.stdout and "significance 100s/1000b" in result.stdout
    assert (tmp_path / "mlflow.db").exists()
    # the same job on Horovod: 2 ranks as Spark tasks, logged to the same store
    again = run([*cmd, "--backend", "horovod", "--executors", "2", "--checkpoint-dir",
                 str(tmp_path / "ckpt")], cwd=tmp_path, env_extra=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "using the cached dataset" in again.stdout
    assert "backend horovod" in again.stdout
    assert "[horovod rank 0] epoch 2/2" in again.stdout + again.stderr  # live, from rank 0
    assert "FutureWarning" not in again.stderr
    assert sorted(d for d in os.listdir(tmp_path / "ckpt") if d.startswith("epoch-")) == [
        "epoch-0001", "epoch-0002"]
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs(client.get_experiment_by_name("higgs-demo-20000").experiment_id,
                              order_by=["attributes.start_time DESC"])
    params = runs[0].data.params
    assert params["backend"] == "horovod" and params["num_executors"] == "2"
    assert params["spark_master"] == "local[2]"
    assert len(client.get_metric_history(runs[0].info.run_id, "epoch_wall_time_s")) == 2


@pytest.mark.parametrize("text, expected", [
    ("epochs: 3\n  optimizer: adam\n", "not valid YAML (mapping values are not allowed here "
                                        "at line 2, column 12)"),
    ("epochs: [3\n", "not valid YAML"),
    ("epochs: five\n", "epochs must be int, got 'five' (str)"),
    ("learning_rate: fast\n", "learning_rate must be float or None, got 'fast'"),
    ("model:\n  depth: '3'\n", "model.depth must be int, got '3' (str)"),
    ("model: 3\n", "model must be a mapping"),
    ("model:\n  depht: 3\n", "unknown DenseNetConfig keys: ['model.depht']"),
])
def test_a_bad_config_file_is_one_line_and_exit_2(tmp_path, capsys, text, expected):
    config = tmp_path / "run.yaml"
    config.write_text(text)
    code = main(["train", "higgs", "--data", str(tmp_path), "--config", str(config),
                 "--no-tracking"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"hepspark: error: --config {config}: ") and expected in err, err


def test_waits_for_the_cluster_have_flags_with_bounded_defaults():
    """BigDL's first job waited up to 3600 s for a missing executor (its Spark settings);
    a stalled Horovod rank had no bound at all. Both are flags with sane defaults."""
    from hepspark.backends.bigdl_compat import bigdl_spark_conf
    from hepspark.backends.horovod_backend import rank_environment
    from hepspark.cli import build_parser
    from hepspark.cli.train import higgs_config_from_args as train_config_from_args

    wait = "spark.scheduler.maxRegisteredResourcesWaitingTime"
    parse = build_parser().parse_args
    default = train_config_from_args(parse(["train", "higgs", "--data", "d"]), "d")
    assert default.executor_wait_s == 300 and default.stall_timeout_s == 600
    assert bigdl_spark_conf(default.executor_wait_s)[wait] == "300s"
    given = train_config_from_args(parse(["train", "higgs", "--data", "d", "--executor-wait-s",
                                          "45", "--stall-timeout-s", "90"]), "d")
    assert bigdl_spark_conf(given.executor_wait_s)[wait] == "45s"
    env = rank_environment(1, given.stall_timeout_s)
    assert env["HOROVOD_STALL_SHUTDOWN_TIME_SECONDS"] == "90"
    assert env["HOROVOD_STALL_CHECK_TIME_SECONDS"] == "45"
    assert not default.mismatches(given)  # a resumed run may change them
    with pytest.raises(ValueError, match="executor_wait_s must be > 0"):
        train_config_from_args(parse(["train", "higgs", "--data", "d",
                                      "--executor-wait-s", "0"]), "d")
