"""The MLflow tag names and values hepspark writes and reads back: one place for the
pipeline, the scaling sweep, imported baselines and the scaling report."""

TASK_TAG = "hepspark.task"  # what made a run; its values below
TRAIN_HIGGS_TASK = "train-higgs"
TRAIN_CNN_TASK = "train-cnn"
BASELINE_TASK = "gpu-baseline"
REPORT_TASK = "scaling-report"

# the scaling sweep's marks on its runs
KEY_TAG = "hepspark.scaling.key"
NODES_TAG = "hepspark.scaling.nodes"
MODE_TAG = "hepspark.scaling.mode"  # standalone | local | master | gpu
CEILING_TAG = "hepspark.flop_ceiling_gflops"  # the FLOP ceiling of the cores the run used
# where a sweep run's processes ran (issue #16): CPU lists as /proc shows them ("0", "2-3")
WORKER_CPUS_TAG = "hepspark.scaling.worker_cpus"  # "0; 1": one pinned set per node; "" unpinned
DRIVER_CPUS_TAG = "hepspark.scaling.driver_cpus"  # the job's own process (driver / Keras)
# a CNN sweep's zoo model as given (vgg16, resnet29b) and its family (vgg, resnet): the
# report's sections per family (issue #16)
MODEL_TAG = "hepspark.scaling.model"
FAMILY_TAG = "hepspark.scaling.family"
# the link a sweep run's nodes exchanged over: "loopback" (127.0.0.1 as it is) or a shaped
# "loopback-1gbit" (hepspark.bench.netns.shaped_loopback); the report's measured networks
LINK_TAG = "hepspark.scaling.link"
JOB_TAG = "hepspark.scaling.job"  # one id per job: the sweep finds its run to add the driver cost
