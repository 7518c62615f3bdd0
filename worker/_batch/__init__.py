"""``optimizer-worker run CONFIG.yaml``: YAML configs, the checkpointed batch
run and its terminal progress bar."""
