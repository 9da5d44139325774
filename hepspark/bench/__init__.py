"""Benchmarks a user runs from the CLI: the scaling sweep (:mod:`.sweep`), the imported
GPU baseline (:mod:`.baseline`) and the performance model fitted to them (:mod:`.perfmodel`).
The report that reads them back from MLflow lives in :mod:`hepspark.report.scaling`."""
