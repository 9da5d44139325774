"""hepspark: distributed deep-learning training and scaling benchmarks on Apache Spark.

The pinned dependency stack is installed by ``make install`` (scripts/install.sh), in the
order that STACK.md prescribes; ``install_requires`` only names what the library imports so
that ``pip install -e .`` never re-resolves (and breaks) those pins.
"""
from setuptools import find_packages, setup

setup(
    name="hepspark",
    version="0.1.0",
    description="Distributed deep-learning training and scaling benchmarks on Apache Spark "
    "for physics datasets (HIGGS, calorimeter and LArTPC images)",
    python_requires=">=3.10",
    packages=find_packages(include=["hepspark", "hepspark.*"]),
    # hepspark.logs: the log4j2 configuration of quiet Spark drivers ships in the wheel
    package_data={"hepspark": ["conf/*.properties"]},
    install_requires=["numpy", "pyarrow", "pyspark", "petastorm", "mlflow", "pyyaml", "isal"],
    # --backend torch (opt-in; `make install-torch` installs the CPU build without
    # disturbing the setuptools<70 pin, see scripts/install_torch.sh)
    extras_require={"torch": ["torch==2.13.0"]},
    entry_points={"console_scripts": ["hepspark=hepspark.cli:main"]},
)
