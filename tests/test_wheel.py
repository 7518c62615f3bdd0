"""The package as users get it: a wheel built from this tree, installed into
a clean venv, runs ``optimizer-worker demo``. An editable install (the one
tests run against) would hide a subpackage the wheel forgets.

The new venv gets this venv's dependencies through a ``.pth`` line (nothing
is downloaded but the build backend pip fetches for any build); the
editable finder of this venv is not among them (``.pth`` files are read in
site directories only, not in paths a ``.pth`` adds), so ``worker`` can only
come from the wheel. The demo runs in an empty directory, so no ``worker/``
folder of the checkout is on its path either.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_wheel_in_a_clean_venv_runs_the_demo(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "-w", str(dist), str(ROOT)], check=True, capture_output=True)
    (wheel,) = dist.glob("optimizer_worker-*.whl")
    packages = {os.path.dirname(n) for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".py")}
    on_disk = {str(p.parent.relative_to(ROOT)) for p in (ROOT / "worker").rglob("__init__.py")}
    assert on_disk <= packages, f"the wheel lacks {sorted(on_disk - packages)}"

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True, capture_output=True, text=True).stdout.strip())
    (site / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"),
                    "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
                   check=True, capture_output=True)

    run = tmp_path / "cwd"
    run.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["NUMBA_CACHE_DIR"] = str(tmp_path / "numba-cache")
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import worker; print(worker.__file__)"],
                           cwd=run, env=env, check=True, capture_output=True, text=True).stdout
    assert where.startswith(str(site)), f"worker imported from {where}, not from the wheel"
    demo = subprocess.run([str(venv / "bin" / "optimizer-worker"), "demo"], cwd=run, env=env,
                          capture_output=True, text=True, timeout=600)
    assert demo.returncode == 0, demo.stderr[-2000:]
    assert "best: tp_mult" in demo.stdout and "per caller:" in demo.stdout
