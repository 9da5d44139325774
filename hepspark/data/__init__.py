"""Data: schemas, generators, converters (raw files → Petastorm Parquet) and readers."""
