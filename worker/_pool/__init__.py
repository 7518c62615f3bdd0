"""The process pool: warm pool processes evaluating grid-job spans on
datasets in shared memory (``pool`` is the map; ``shm``, ``spans``,
``calls``, ``proc``, ``child`` its layers). Nothing is imported here: a pool
process (``python -m worker._pool.child``) loads only what it needs."""
