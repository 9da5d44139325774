"""hepspark: distributed deep learning on Apache Spark for physics datasets."""

__version__ = "0.1.0"
