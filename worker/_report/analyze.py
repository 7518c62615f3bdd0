"""``optimizer-worker analyze RUN_DIR``: rewrite a finished run's report
(results.csv, summary.md, plots) from its own files, without recomputing
anything: results.parquet, run.json, result.json and best_trades.json.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import msgspec

from .._errors import InvalidParams, WorkerError

# Written at the end of a run, in this order of importance for the report.
REQUIRED = ("results.parquet", "run.json", "result.json")


class NotARunDirectory(WorkerError):
    """The directory is missing, unfinished or unreadable (an invalid argument)."""

    code = InvalidParams.code


def analyze(run_dir: Path) -> list[Path]:
    """Re-create results.csv, summary.md and plots/; the paths written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .report import write_derived

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise NotARunDirectory(f"{run_dir}: no such directory")
    missing = [name for name in REQUIRED if not (run_dir / name).is_file()]
    if missing:
        unfinished = (" (journal.jsonl is there: the run has not finished)"
                      if (run_dir / "journal.jsonl").is_file() else "")
        raise NotARunDirectory(f"{run_dir} is not a finished run directory: missing "
                               f"{', '.join(missing)}{unfinished}")
    meta = _json(run_dir / "run.json")
    result = _json(run_dir / "result.json")
    if not isinstance(meta, dict) or "objective" not in meta:
        raise NotARunDirectory(f"{run_dir / 'run.json'}: not a run record (no objective)")
    trades_path = run_dir / "best_trades.json"
    trades = _trades(_json(trades_path)) if trades_path.is_file() else None
    try:
        table = pq.read_table(run_dir / "results.parquet")
    except (OSError, pa.ArrowException) as exc:
        raise NotARunDirectory(f"{run_dir / 'results.parquet'}: unreadable ({exc})") from exc
    if meta["objective"] not in table.column_names:
        raise NotARunDirectory(f"{run_dir / 'results.parquet'}: no column "
                               f"{meta['objective']!r} (the run's objective)")
    return write_derived(run_dir, table=table, meta=meta, result=result, best_trades=trades)


def _json(path: Path) -> Any:
    try:
        return msgspec.json.decode(path.read_bytes())
    except (OSError, msgspec.DecodeError) as exc:
        raise NotARunDirectory(f"{path}: unreadable ({exc})") from exc


def _trades(data: Any) -> list | None:
    """A list of trade records, or an object holding one (``trades`` /
    ``completed_trades``), as whoever wrote the run chose."""
    if isinstance(data, dict):
        data = data.get("trades", data.get("completed_trades"))
    return data if isinstance(data, list) else None


def analyze_main(run_dir: str) -> int:
    """The CLI command: the files written, one per line, on stdout; 2 on error."""
    try:
        paths = analyze(Path(run_dir))
    except WorkerError as exc:
        sys.stderr.write(f"optimizer-worker: error: {exc.message}\n")
        return 2
    sys.stdout.write("".join(f"{p}\n" for p in paths))
    return 0
