"""Datasets from the outside: JSON rows and columns, Parquet and CSV files,
and the seeded synthetic generator. Builds on ``worker._core.dataset``."""
