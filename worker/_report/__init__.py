"""The run directory (SPEC 8): opening and finishing it, results tables, the
summary, plots and ``analyze``. Shared by checkpointed daemon runs and the
batch CLI; imports neither."""
