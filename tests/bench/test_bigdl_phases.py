"""Where a BigDL iteration goes, read from a real BigDL 2.4 driver log: the excerpt in
data/ is 30 iterations of a 2-node HIGGS run (Adam, 1000 rows per node) made with
the driver option DRIVER_OPTION (hepspark's quiet log4j2 configuration plus
hepspark/conf/log4j2-bigdl-phases.properties)."""
import os

import pytest

from hepspark.bench.bigdl_phases import DRIVER_OPTION, LOG4J2, PHASES, format_summary, summarize
from hepspark.cli import main

LOG = os.path.join(os.path.dirname(__file__), "data", "bigdl_distri_optimizer_debug.log")


def test_the_phases_of_each_iteration_are_paired_with_its_wall_time():
    summary = summarize(LOG, skip_fraction=0)
    assert summary.iterations == 30 and summary.records_per_iteration == 2000
    assert set(summary.phases_ms) == set(PHASES)
    # the executors' phases take a fraction of the iteration; the driver's loop the rest
    assert 0 < sum(summary.phases_ms.values()) < summary.iteration_ms
    assert summary.outside_ms == pytest.approx(
        summary.iteration_ms - sum(summary.phases_ms.values()))
    assert summary.phases_ms["computing time average"] > summary.phases_ms["put gradient"]
    text = format_summary(summary)
    assert "executors: compute (forward + backward)" in text and "the driver loop" in text
    assert summarize(LOG).skipped == 10  # a third left out as warm-up by default


def test_a_log_without_metrics_says_how_to_make_one(tmp_path, capsys):
    plain = tmp_path / "job.log"
    plain.write_text("INFO DistriOptimizer$: [Epoch 1 2000/100][Iteration 1][Wall Clock 0.7s] "
                     "Trained 2000.0 records in 0.70 seconds. Throughput is 2838 records/s.\n")
    assert main(["bench", "bigdl-phases", str(plain)]) == 2
    err = capsys.readouterr().err
    assert "no BigDL iteration with its metrics summary" in err and DRIVER_OPTION in err
    assert DRIVER_OPTION.endswith(f"log4j2-quiet.properties,file:{LOG4J2}")
    with open(LOG4J2) as handle:  # the configuration it names turns the summaries on
        assert "com.intel.analytics.bigdl.dllib.optim\nlogger.bigdloptim.level = debug" in (
            handle.read())
