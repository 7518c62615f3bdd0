"""The process pool: warm pool processes evaluating grid-job spans on
datasets in shared memory. Nothing is imported here: a pool process
(``python -m worker._pool.child``) loads only what it needs.

Layers, each using only those below it:

- ``evaluator``: ``PoolEvaluator``, the pool as a ``worker._run`` evaluator
  (whole flows: ``worker._run.drive``), sharing an inline dataset for its run;
- ``pool``: ``WorkerPool``, slots that start, serve and replace processes,
  and ``evaluate`` (a job's span, on the pool);
- ``requests``: the requests in flight and the span queue;
- ``proc``: processes (start, read, reap, stop);
- ``spans``: a job as spans and as the spec a process gets;
- ``shm``: datasets in shared files; ``cpus``: how many CPUs to use;
- ``codec``: frames and arrays on the wire; ``child``: the pool process.

Use::

    async with WorkerPool(size) as pool:
        shared = share_dataset(ds)           # once per dataset; keep shared.dataset
        metrics, exits, skipped = await pool.evaluate(shared, "ds-1", job)
        result = await drive(optimize_flow(shared.dataset), PoolEvaluator(pool, shared))
        ...
        await pool.forget("ds-1"); shared.close()
"""
