"""Running flows: evaluators, the driver, checkpoints and their journal, and
warming the kernels. Used by the library, the pool, the daemon and the CLI."""
