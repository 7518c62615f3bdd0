"""Running flows: evaluators (``evaluators``), the one driver (``drive``),
checkpoints and their journal (``checkpoint``, ``journal``), the library's
blocking entry points (``library``) and warming the kernels (``warm``).
Used by the library, the pool, the daemon and the CLI."""
