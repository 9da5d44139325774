"""deploy/: the manifests and the Dockerfile cannot run here (no container engine, no
Kubernetes); what can be checked is checked: the YAML parses, the job's arguments are
accepted by the real `hepspark train higgs` parser, images, ports, paths and jars agree."""
from __future__ import annotations

import glob
import os
import re

import pytest
import yaml

from hepspark.cli import build_parser

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
K8S = os.path.join(ROOT, "deploy", "k8s")
DOCKERFILE = os.path.join(ROOT, "deploy", "docker", "Dockerfile")
IMAGE = "hepspark:0.1.0"


def documents(name: str) -> list[dict]:
    with open(os.path.join(K8S, name)) as handle:
        return [d for d in yaml.safe_load_all(handle) if d]


def by_kind(docs: list[dict], kind: str) -> dict:
    [doc] = [d for d in docs if d["kind"] == kind]
    return doc


def test_every_manifest_parses_and_is_a_kubernetes_object():
    files = sorted(glob.glob(os.path.join(K8S, "*.yaml")))
    assert [os.path.basename(f) for f in files] == [
        "mlflow.yaml", "pod-template.yaml", "sparkapplication.yaml"]
    for path in files:
        for doc in documents(os.path.basename(path)):
            assert {"apiVersion", "kind"} <= set(doc), path
            assert doc["kind"] == "Pod" or doc["metadata"]["name"], path


def test_spark_application_runs_the_job_with_arguments_the_cli_accepts():
    app = by_kind(documents("sparkapplication.yaml"), "SparkApplication")
    spec = app["spec"]
    assert app["apiVersion"] == "sparkoperator.k8s.io/v1beta2"
    assert spec["image"] == IMAGE and spec["type"] == "Python"
    job = spec["mainApplicationFile"].removeprefix("local:///opt/hepspark/")
    assert os.path.exists(os.path.join(ROOT, job)) and job == "spark_jobs/train_higgs.py"
    args = build_parser().parse_args(["train", "higgs", *spec["arguments"]])  # exits if not
    assert args.backend == "horovod"
    assert args.num_executors == spec["executor"]["instances"]  # one rank per executor
    # data and checkpoints on the shared volume that driver and executors mount
    mounts = {m["mountPath"] for role in ("driver", "executor")
              for m in spec[role]["volumeMounts"]}
    assert mounts == {"/data"}
    assert args.data.startswith("/data/") and args.checkpoint_dir.startswith("/data/")
    # the venv path of the image
    assert spec["sparkConf"]["spark.pyspark.python"] == "/opt/hepspark/.venv/bin/python"
    assert "HEPSPARK_VENV=/opt/hepspark/.venv " in open(DOCKERFILE).read()


def test_the_job_logs_to_the_mlflow_service_on_its_port():
    mlflow_docs = documents("mlflow.yaml")
    service = by_kind(mlflow_docs, "Service")
    deployment = by_kind(mlflow_docs, "Deployment")
    app = by_kind(documents("sparkapplication.yaml"), "SparkApplication")
    args = build_parser().parse_args(["train", "higgs", *app["spec"]["arguments"]])
    match = re.fullmatch(r"http://([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local:(\d+)",
                         args.tracking_uri)
    assert match, args.tracking_uri
    name, namespace, port = match[1], match[2], int(match[3])
    assert (name, namespace) == (service["metadata"]["name"], service["metadata"]["namespace"])
    assert namespace == app["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    [service_port] = service["spec"]["ports"]
    assert service_port["port"] == port
    # the Service reaches the container port the server listens on
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == IMAGE
    assert service["spec"]["selector"] == deployment["spec"]["template"]["metadata"]["labels"]
    server = build_parser().parse_args(container["command"][1:])  # hepspark mlflow-server ...
    assert container["command"][0] == "hepspark" and server.command == "mlflow-server"
    assert server.port == service_port["targetPort"] == container["ports"][0]["containerPort"]
    assert server.host == "0.0.0.0"  # reachable from other pods
    assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": server.port}
    mounted = {m["mountPath"] for m in container["volumeMounts"]}
    assert server.store in mounted
    assert deployment["spec"]["replicas"] == 1  # sqlite: one writer
    assert f"EXPOSE {server.port}" in open(DOCKERFILE).read()


def test_bigdl_jars_in_the_manifest_are_the_installed_ones():
    pytest.importorskip("bigdl")
    from hepspark.session import bigdl_conf

    app = by_kind(documents("sparkapplication.yaml"), "SparkApplication")
    manifest_jars = [os.path.basename(j) for j in app["spec"]["sparkConf"]["spark.jars"]
                     .split(",")]
    installed = [os.path.basename(j) for j in bigdl_conf()["spark.jars"].split(",")]
    assert manifest_jars == installed


def test_pod_template_and_dockerfile_agree_on_the_image():
    pod = by_kind(documents("pod-template.yaml"), "Pod")
    [container] = pod["spec"]["containers"]
    assert container["image"] == IMAGE
    assert container["name"] == "spark-kubernetes-executor"  # the name Spark merges into
    text = open(DOCKERFILE).read()
    assert f"-t {IMAGE}" in text
    assert "openjdk-17" in text and "scripts/install.sh" in text
    for copied in re.findall(r"^COPY (?!--from)(\S+) ", text, re.M):
        assert os.path.exists(os.path.join(ROOT, copied)), copied


def test_restarts_of_the_spark_application_continue_the_run():
    """restartPolicy OnFailure re-runs the same arguments: with --resume-if-present a
    restart continues from the run's checkpoints instead of starting over in them."""
    app = by_kind(documents("sparkapplication.yaml"), "SparkApplication")
    assert app["spec"]["restartPolicy"]["type"] == "OnFailure"
    args = build_parser().parse_args(["train", "higgs", *app["spec"]["arguments"]])
    assert args.checkpoint_dir and args.resume_if_present and not args.resume


def test_the_mlflow_server_allows_the_host_the_job_uses():
    # MLflow 3.5+ answers /health to any Host but the API with 403 to hosts not allowed:
    # the probes would pass while every job's first call fails.
    mlflow_docs = documents("mlflow.yaml")
    [container] = by_kind(mlflow_docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    server = build_parser().parse_args(container["command"][1:])
    app = by_kind(documents("sparkapplication.yaml"), "SparkApplication")
    job = build_parser().parse_args(["train", "higgs", *app["spec"]["arguments"]])
    host = job.tracking_uri.split("//", 1)[1].rstrip("/")
    assert server.allowed_hosts and host in server.allowed_hosts.split(",")
    from hepspark.mlflow_server import server_command

    argv = server_command(server.store, server.port, server.host, server.allowed_hosts)
    allowed = argv[argv.index("--allowed-hosts") + 1].split(",")
    assert host in allowed and "localhost:*" in allowed  # port-forward to the UI still works


def test_only_pods_of_the_namespace_reach_the_mlflow_server():
    mlflow_docs = documents("mlflow.yaml")
    policy = by_kind(mlflow_docs, "NetworkPolicy")
    deployment = by_kind(mlflow_docs, "Deployment")
    assert policy["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    assert policy["spec"]["podSelector"]["matchLabels"] == \
        deployment["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    [rule] = policy["spec"]["ingress"]
    assert rule["from"] == [{"podSelector": {}}]  # no namespaceSelector, no ipBlock
    assert rule["ports"] == [{"port": 5000}]
