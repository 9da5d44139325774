"""The kept scaling report (benchmarks/results/scaling-2core-kept) rebuilds from its own
MLflow store and measured terms with today's report and model code: a change that moves a
kept number fails here until the kept report is regenerated (its README says how) and the
README's quotes of it checked."""
import glob
import os
import re

import pytest

from hepspark.report.scaling import write_scaling_report

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
KEPT = os.path.join("benchmarks", "results", "scaling-2core-kept")  # as the report names it


def _terms(kept: str) -> dict:
    return dict(
        exchange_file=os.path.join(kept, "exchange.json"), link="veth-10gbit",
        step_curve_files=tuple(os.path.join(kept, f"step_curve_{e}.json")
                               for e in ("horovod", "torch")),
        group_cost_files=tuple(f for e in ("horovod", "torch")
                               for f in sorted(glob.glob(os.path.join(kept,
                                                                      f"colocation_{e}*.json")))))


@pytest.mark.parametrize("experiment, part, model_terms", [("higgs-kept", "higgs", True),
                                                           ("cnn-kept", "cnn", False)])
def test_the_kept_report_rebuilds_from_its_store(experiment, part, model_terms, tmp_path,
                                                 monkeypatch):
    monkeypatch.chdir(ROOT)  # the report names its files as they were given, from the root
    kept = KEPT
    store = os.path.join(kept, "runs.sqlite")
    if not os.path.exists(store):
        pytest.skip("no kept store")
    with open(os.path.join(kept, part, "report.md")) as handle:
        before = handle.read()
    context = re.search(r"## Measurement conditions\n\n(.*)\n", before).group(1)
    terms = _terms(kept) if model_terms else {
        "exchange_file": os.path.join(kept, "exchange.json"), "link": "veth-10gbit"}
    path = write_scaling_report(experiment, str(tmp_path / part), f"sqlite:///{store}",
                                context=context, log_to_mlflow=False, **terms)
    with open(path) as handle:
        after = handle.read()

    def drop_uri(text: str) -> str:  # the summary names the store's path as given
        return re.sub(r"\(sqlite:///[^)]*\)", "(STORE)", text)

    assert drop_uri(after) == drop_uri(before)
