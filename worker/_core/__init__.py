"""The engine (lowest layer above ``worker._errors``): the dataset, the Numba
kernels and their wrappers, metrics, and the optimization flows of SPEC 2-6.
Imports nothing of the layers above (data, run, pool, report, daemon, batch)."""
