"""The report's model sections, rendered from runs made by known terms and a measured-link
file: the held-out check, the USL and the prediction over the measured link."""
import json
from dataclasses import replace

import pytest

from hepspark.bench.exchange import FORMAT
from hepspark.bench.perfmodel import Measurement, Network, PerfModel
from hepspark.report.runs import MeasuredRun
from hepspark.report.scaling import ReportConfig, build_report

PARAMS = 189_601
LOOP = {"bandwidth_gbps": 20.0, "latency_s": 5e-6, "overhead_s": 1e-3}
TEN = {"bandwidth_gbps": 9.5, "latency_s": 30e-6, "overhead_s": 1e-3}


def exchange_file(tmp_path, torch=True, extra_links=()) -> str:
    """Horovod's and (``torch``) torch's all-reduce per link; without torch, a version 1
    file (Horovod's fit on the link itself). ``extra_links``: (name, network) pairs more."""
    path = tmp_path / "exchange.json"
    held = [{"link": "veth-10gbit", "floats": PARAMS, "measured_s": 2.0e-3,
             "predicted_s": 2.2e-3, "error": 0.1}]
    if not torch:
        path.write_text(json.dumps({"format": "hepspark-exchange/1", "links": {
            "loopback": {"network": LOOP}, "veth-10gbit": {"network": TEN}}, "held_out": held}))
        return str(path)
    links = {name: {"horovod": {"network": net},
                    "torch": {"network": {**net, "overhead_s": 0.5e-3}}}
             for name, net in (("loopback", LOOP), ("veth-10gbit", TEN), *extra_links)}
    path.write_text(json.dumps({"format": FORMAT, "engines": ["horovod", "torch"],
                                "links": links, "held_out": [{**held[0], "engine": "horovod"}]}))
    return str(path)


def run(backend, nodes, batch_per_node, seconds, optimizer="adam") -> MeasuredRun:
    batch = batch_per_node if backend == "horovod" else batch_per_node * nodes
    return MeasuredRun(
        run_id=f"{backend}{nodes}{batch_per_node}{optimizer}".ljust(32, "0"), name="r",
        backend=backend, optimizer=optimizer, nodes=nodes, cores_per_executor=1,
        batch_size=batch, train_rows=200_000, parameters=PARAMS, device="CPU: test",
        mode="local", epochs=[{"epoch_wall_time_s": seconds * 1.5},
                              {"epoch_wall_time_s": seconds * 0.99},
                              {"epoch_wall_time_s": seconds * 1.01}])  # spread 1 %


def runs_from_known_terms() -> list[MeasuredRun]:
    horovod = PerfModel("horovod", 15e-6, 4e-3, 2e-3, 4 * PARAMS, Network(**LOOP),
                        Network(**TEN), None)
    out = [run("horovod", n, b, horovod.fitted_time_s(Measurement(n, 200_000, n * b, 0.0)))
           for n in (1, 2, 4) for b in (64, 250, 1000)]
    out += [run("bigdl", 1, 1000, 30.0), run("bigdl", 2, 1000, 19.0),
            run("bigdl", 1, 1000, 32.0, "sgd"), run("bigdl", 2, 1000, 18.0, "sgd"),
            run("keras", 1, 1000, 4.0)]
    return out


def test_model_sections_render_with_a_measured_link(tmp_path):
    config = ReportConfig("t", str(tmp_path / "r"), exchange_file=exchange_file(tmp_path),
                          link="veth-10gbit")
    (tmp_path / "plots").mkdir()
    md = build_report(runs_from_known_terms(), config, str(tmp_path / "plots")).to_markdown()
    for title in ("## Performance model and prediction past one machine",
                  "### Measured exchange", "### Held-out check of the performance model",
                  "### Universal Scalability Law beside the model",
                  "## Prediction: the 10,500,000-row epoch on up to 64 nodes"):
        assert title in md
    # Horovod's runs come from the model's own terms: every held-out run is predicted
    assert ("- horovod: largest held-out error 0% (within the 10% target) over 6 run(s); "
            "0 of 6 larger than their run's own epoch-to-epoch spread") in md
    assert "| -0.0 | 1.0 |" in md or "| +0.0 | 1.0 |" in md  # error %, the run's epoch spread %
    assert "| horovod | nodes | N=4 |" in md and "| horovod | batch per node | B=1000 |" in md
    # BigDL has N=1,2 at one batch: holding out N=2 leaves no multi-node run, and it says so
    assert "- bigdl: largest held-out error" in md and "had no multi-node run" in md
    assert "bigdl: one multi-node count only: β (crosstalk) taken as 0" in md
    # the prediction runs over the measured link, not an assumed one
    assert ("horovod: 9.5 Gbit/s, 30 µs per message, 1 ms per exchange (measured: veth-10gbit, "
            "horovod all-reduce)") in md
    assert "+ 1 ms per fetch, assumed" in md
    assert ("- veth-10gbit, horovod, 189,601 floats: measured 2.00 ms, predicted 2.20 ms "
            "(+10%)") in md
    # the measured-exchange table has each engine's overhead per link
    assert "| veth-10gbit | horovod | 9.50 | 30.0 | 1.00 |" in md
    assert "| veth-10gbit | torch | 9.50 | 30.0 | 0.50 |" in md
    assert (tmp_path / "plots" / "prediction.png").stat().st_size > 5000


def test_a_link_the_file_does_not_have_is_refused_naming_the_ones_it_has(tmp_path):
    config = ReportConfig("t", str(tmp_path / "r"), exchange_file=exchange_file(tmp_path),
                          link="veth-1gbit")
    with pytest.raises(ValueError, match="'veth-1gbit' is not in .* loopback, veth-10gbit"):
        build_report(runs_from_known_terms(), config, str(tmp_path))


def colocation_file(path, engine, alone_ms, idle_ms, allreduce_ms, batch_size=None):
    data = {"alone": {"mean_ms": alone_ms}, f"{engine}_idle": {"mean_ms": idle_ms},
            f"{engine}_allreduce_ms": allreduce_ms}
    path.write_text(json.dumps(data if batch_size is None else {**data, "batch_size": batch_size}))
    return str(path)


def test_measured_group_costs_enter_their_engines_models_and_are_shown(tmp_path):
    horovod = colocation_file(tmp_path / "horovod.json", "horovod", 10.0, 11.0, 7.0)
    torch = colocation_file(tmp_path / "torch.json", "torch", 10.0, 10.5, 2.0)
    config = ReportConfig("t", str(tmp_path / "r"), exchange_file=exchange_file(tmp_path),
                          group_cost_files=(horovod, torch))
    (tmp_path / "plots").mkdir()
    runs = runs_from_known_terms() + [run("torch", 1, 1000, 5.0), run("torch", 2, 1000, 3.5)]
    md = build_report(runs, config, str(tmp_path / "plots")).to_markdown()
    assert f"Here: {horovod}, {torch}." in md
    # each engine gets its own file's g (and x = all-reduce minus the link's idle one);
    # BigDL, which neither file measured, gets none
    assert "| horovod | " in md and "| x1.100, " in md
    assert "| x1.050, " in md
    assert "| bigdl | " in md and "1, 0 (none given)" in md
    # torch's exchange is its own all-reduce's, measured by the same file
    assert ("torch: 9.5 Gbit/s, 30 µs per message, 0.5 ms per exchange (measured: veth-10gbit, "
            "torch all-reduce)") in md


def test_an_exchange_file_without_torch_lends_horovods_all_reduce_and_says_so(tmp_path):
    config = ReportConfig("t", str(tmp_path / "r"),
                          exchange_file=exchange_file(tmp_path, torch=False))
    (tmp_path / "plots").mkdir()
    runs = runs_from_known_terms() + [run("torch", 1, 1000, 5.0), run("torch", 2, 1000, 3.5)]
    md = build_report(runs, config, str(tmp_path / "plots")).to_markdown()
    assert ("torch: 9.5 Gbit/s, 30 µs per message, 1 ms per exchange (measured: veth-10gbit, "
            "horovod all-reduce, standing in for torch's)") in md
    assert "torch's model Horovod's all-reduce (this file did not time torch's)" in md


def test_colocation_files_with_and_without_a_batch_for_one_engine_are_refused(tmp_path):
    files = tuple(colocation_file(tmp_path / f"{i}.json", "torch", 10.0, 10.0 + i, 2.0, b)
                  for i, b in enumerate((None, 1000)))
    with pytest.raises(ValueError, match="2 files measure torch's ranks, some without a batch"):
        ReportConfig("t", str(tmp_path / "r"), group_cost_files=files)  # refused when built


def test_colocation_files_at_several_batches_make_a_curve_shown_per_batch(tmp_path):
    files = (colocation_file(tmp_path / "b4000.json", "horovod", 40.0, 44.0, 9.0, 4000),
             colocation_file(tmp_path / "b1000.json", "horovod", 10.0, 10.0, 7.0, 1000),
             colocation_file(tmp_path / "b1000-again.json", "horovod", 10.0, 10.4, 7.0, 1000))
    config = ReportConfig("t", str(tmp_path / "r"), exchange_file=exchange_file(tmp_path),
                          group_cost_files=files)
    assert config.model_settings.group_costs["horovod"].batch_sizes == (1000, 4000)
    (tmp_path / "plots").mkdir()
    md = build_report(runs_from_known_terms(), config, str(tmp_path / "plots")).to_markdown()
    # the two runs at 1000 averaged: g = (1.00 + 1.04) / 2
    assert "| x1.020, " in md and " ms at 1000, x1.100, " in md and " ms at 4000 |" in md
    assert config.model_settings.group_costs["horovod"].points[0].source.startswith(
        "mean of 2 runs, g 1.000..1.040: ")


def step_curve_file(path, engine, points):
    path.write_text(json.dumps({"format": "hepspark-step-curve/1", "engine": engine,
                                "points": [{"batch_size": b, "mean_ms": ms}
                                           for b, ms in points]}))
    return str(path)


def test_a_step_curve_enters_its_engines_model_and_is_shown(tmp_path):
    curve = step_curve_file(tmp_path / "horovod.json", "horovod",
                            [(64, 1.14), (250, 3.0), (1000, 8.5)])
    config = ReportConfig("t", str(tmp_path / "r"), exchange_file=exchange_file(tmp_path),
                          step_curve_files=(curve,))
    (tmp_path / "plots").mkdir()
    md = build_report(runs_from_known_terms(), config, str(tmp_path / "plots")).to_markdown()
    assert f"Here: {curve}." in md
    # Horovod's time per row follows the curve after its fixed 0.5 ms per step (the line
    # through 64 and 250 rows at 0): 10 µs per row up to 250, 8 at 1000; BigDL's, which the
    # file does not measure, stays constant
    assert "x1.250 at 64, x1.250 at 250, x1.000 at 1000 (after the step's fixed 0.50 ms)" in md
    assert "| bigdl | " in md and "1 (no step curve)" in md


def test_two_step_curves_of_one_engine_are_refused(tmp_path):
    files = tuple(step_curve_file(tmp_path / f"{i}.json", "torch", [(500, 8.0), (1000, 16.0)])
                  for i in range(2))
    with pytest.raises(ValueError, match="two files measure torch's step .*one per engine"):
        ReportConfig("t", str(tmp_path / "r"), step_curve_files=files)


def test_the_model_times_the_rows_an_epoch_trained_not_the_whole_split(tmp_path):
    """Ranks drop the last partial global batch: at 4000 x 2 rows on 171,072, an epoch is
    21 steps (168,000 rows); its time must not be read as 171,072 rows' worth."""
    from hepspark.report.scaling_model import ModelSettings, fit_models

    runs = [run("horovod", n, 4000, seconds) for n, seconds in ((1, 2.0), (2, 1.2))]
    for r in runs:
        trained = (171_072 // r.global_batch) * r.global_batch
        for epoch in r.epochs:
            epoch["rows_per_s"] = trained / epoch["epoch_wall_time_s"]
        r.train_rows = 171_072
    model = fit_models(runs, ModelSettings(epoch_rows=10_500_000))["horovod"]
    assert [m.rows for m in model.measurements] == [168_000, 168_000]
    assert [m.steps for m in model.measurements] == [42, 21]


def test_a_run_knows_whether_its_driver_had_a_core_of_its_own():
    def placed(worker_cpus, driver_cpus):
        r = run("horovod", 1, 1000, 2.0)
        r.worker_cpus, r.driver_cpus = worker_cpus, driver_cpus
        return r.driver_on_nodes

    assert not placed("0", "0-1")     # N = 1 on CPU 0, the driver free to use CPU 1
    assert placed("0; 1", "0-1")      # N = 2 on both cores: no core left for the driver
    assert placed("0", "0")           # N = 1, the driver pinned to the node's core
    assert not placed(None, "0-1") and not placed("0", None)  # not pinned: not known


def test_a_runs_epoch_spread_is_the_iqr_of_its_steady_epochs_over_their_median():
    r = run("torch", 1, 1000, 2.0)
    r.epochs = [{"epoch_wall_time_s": s} for s in (9.0, 1.0, 2.0, 3.0, 4.0, 5.0)]
    assert r.epoch_spread == pytest.approx((4.0 - 2.0) / 3.0)  # the warm-up epoch left out
    r.epochs = r.epochs[:2]
    assert r.epoch_spread is None  # one steady epoch: no spread to speak of


def test_driver_placement_runs_measure_h_and_stay_out_of_the_scaling_curves(tmp_path):
    """A single-node run with the driver on the node's core, beside the same run with it
    apart, is a measurement of h: the model uses it, the efficiency table does not."""
    runs = [run("horovod", 1, 1000, 2.0), run("horovod", 1, 1000, 2.2),
            run("horovod", 2, 1000, 1.3)]
    runs[1].run_id = "probe".ljust(32, "0")
    for r, (workers, driver) in zip(runs, (("0", "0-1"), ("0", "0"), ("0; 1", "0-1"))):
        r.worker_cpus, r.driver_cpus = workers, driver
    (tmp_path / "plots").mkdir()
    md = build_report(runs, ReportConfig("t", str(tmp_path / "r")),
                      str(tmp_path / "plots")).to_markdown()
    assert "measure what the driver costs nodes whose cores it shares" in md
    efficiency = md.split("## Parallel efficiency", 1)[1].split("\n## ", 1)[0]
    assert "| horovod adam | 1.00 | 0.77 |" in efficiency  # 2.0 / (2 x 1.3), not 2.2's
    assert "| x1.100 |" in md  # h = 2.2 / 2.0, in the model's table


def test_a_sweep_over_batches_is_predicted_at_the_seeds_1000_rows_not_its_smallest(tmp_path):
    md = build_report(runs_from_known_terms(), ReportConfig("t", str(tmp_path / "r")),
                      str(tmp_path)).to_markdown()
    # Horovod ran 64, 250 and 1000 rows per node, three runs each
    assert "horovod: 1000 rows per node per step" in md


def test_a_full_size_run_is_checked_by_the_model_but_kept_out_of_the_samples_tables(tmp_path):
    """The 11M-event runs sit beside the sample's in one experiment: the held-out check
    predicts them from the sample's runs; the efficiency and time-to-target tables, which
    compare epochs of one length, leave them out."""
    runs = [run("horovod", 1, 1000, 2.0), run("horovod", 2, 1000, 1.3),
            run("horovod", 1, 1000, 80.0)]
    full = runs[2]
    full.run_id, full.train_rows = "full".ljust(32, "0"), 10_000_000
    for r in runs:
        r.epochs = [{**e, "val_auc": 0.9} for e in r.epochs]  # the target at epoch 1
    (tmp_path / "plots").mkdir()
    md = build_report(runs, ReportConfig("t", str(tmp_path / "r")),
                      str(tmp_path / "plots")).to_markdown()
    target = md.split("## Time to target quality", 1)[1].split("\n## ", 1)[0]
    assert "| 3.0 s (epoch 1) |" in target and "120.0 s" not in target
    efficiency = md.split("## Parallel efficiency", 1)[1].split("\n## ", 1)[0]
    assert "| horovod adam | 1.00 | 0.77 |" in efficiency
    assert "| horovod | epoch rows | 10,000,000 rows |" in md


SLOW_LO = {"bandwidth_gbps": 0.4, "latency_s": 40e-6, "overhead_s": 1e-3}


def test_runs_over_a_shaped_link_are_predicted_from_its_exchange_and_kept_off_the_curves(
        tmp_path):
    """A sweep's --link loopback-1gbit: its runs exchange over the slower link the exchange
    benchmark measured; the model (fitted on loopback) predicts them in the held-out check's
    link dimension, and they stay out of the scaling curves."""
    horovod = PerfModel("horovod", 15e-6, 4e-3, 2e-3, 4 * PARAMS, Network(**LOOP),
                        Network(**TEN), None)
    slow = Network(**SLOW_LO)
    shaped = [replace(run("horovod", n, 1000, horovod.fitted_time_s(
        Measurement(n, 200_000, n * 1000, 0.0, network=slow))), link="loopback-1gbit",
        run_id=f"slow{n}".ljust(32, "0")) for n in (2, 4)]
    slower = {**SLOW_LO, "bandwidth_gbps": 0.2}
    shaped.append(replace(run("horovod", 2, 1000, horovod.fitted_time_s(
        Measurement(2, 200_000, 2000, 0.0, network=Network(**slower)))),
        link="loopback-500mbit", run_id="slower2".ljust(32, "0")))
    config = ReportConfig("t", str(tmp_path / "r"), exchange_file=exchange_file(
        tmp_path, extra_links=(("loopback-1gbit", SLOW_LO), ("loopback-500mbit", slower))))
    (tmp_path / "plots").mkdir()
    md = build_report(runs_from_known_terms() + shaped, config,
                      str(tmp_path / "plots")).to_markdown()
    # predicted exactly from each link's measured network, both from a fit over loopback only
    # (the 1 Gbit/s runs are held out beside the 500 Mbit/s one, not fitted on)
    for start in ("| horovod | link | 0.4 Gbit/s | horovod adam x2 b2000 over loopback-1gbit |",
                  "| horovod | link | 0.4 Gbit/s | horovod adam x4 b4000 over loopback-1gbit |",
                  "| horovod | link | 0.2 Gbit/s | horovod adam x2 b2000 over loopback-500mbit |"):
        row = next(line for line in md.splitlines() if line.startswith(start))
        assert "| -0.0 |" in row or "| +0.0 |" in row
    assert "Runs over a shaped link" in md and "| loopback-1gbit |" in md  # the Runs table
    # not a point of the curves: Horovod's N=2 epoch time is the loopback run's
    loop_n2 = horovod.fitted_time_s(Measurement(2, 200_000, 2000, 0.0))
    epoch = md.split("## Epoch wall time vs executors", 1)[1].split("##", 1)[0]
    assert f"{loop_n2:.2f}" in epoch
    # a link the exchange file did not measure: one line saying how to measure it
    bare = ReportConfig("t", str(tmp_path / "r2"), exchange_file=exchange_file(tmp_path))
    with pytest.raises(ValueError, match="runs trained over 'loopback-1gbit', which .* did "
                       "not measure: measure it with 'hepspark bench exchange --links "
                       "loopback,loopback-1gbit"):
        build_report(runs_from_known_terms() + shaped, bare, str(tmp_path / "plots"))
