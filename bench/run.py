"""Run every graphcomms benchmark: ``python bench/run.py [--quick] [--json PATH]``.

Each benchmark runs in a fresh interpreter (``python bench/<name>.py``), so
none inherits another's memory, threads or garbage; its table is printed as
it finishes. The machine is printed first, the targets last, and everything
(tables, raw figures, machine) is written as JSON, by default to
``bench/results/latest.json``. See bench/README.md for how to read it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import BENCH_DIR, format_value, machine

BENCHMARKS = (
    ("cancel_latency", "1. cancel latency"),
    ("capacity", "2. real-time capacity"),
    ("api_throughput", "3. API throughput"),
    ("virtual_clock", "4. virtual clock"),
    ("notifications", "5. notification delivery"),
)


def main() -> int:
    """Run the benchmarks named (all by default) and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a run under two minutes")
    parser.add_argument(
        "--json", type=Path, default=BENCH_DIR / "results" / "latest.json"
    )
    parser.add_argument(
        "--only", nargs="*", choices=[name for name, _ in BENCHMARKS], default=None
    )
    args = parser.parse_args()

    info = machine()
    command = "python bench/run.py" + (" --quick" if args.quick else "")
    print(f"graphcomms benchmarks: {command}")
    print(
        f"machine: {info['nproc']} cores, {info['cpu']}; Python {info['python']}, "
        f"numpy {info['numpy']} ({'; '.join(info['blas'])}); "
        f"fastapi {info['fastapi']}, uvicorn {info['uvicorn']}, httpx {info['httpx']}; "
        "load average at start "
        + ", ".join(f"{x:.2f}" for x in info["load_avg_at_start"])
    )
    if info["openblas_env"]:
        print(f"OpenBLAS environment: {info['openblas_env']}")
    print(flush=True)

    log_dir = Path(tempfile.mkdtemp(prefix="graphcomms-bench-"))
    started = time.monotonic()
    tables = []
    for name, label in BENCHMARKS:
        if args.only and name not in args.only:
            continue
        out = log_dir / f"{name}.json"
        argv = [sys.executable, str(BENCH_DIR / f"{name}.py"), "--json", str(out)]
        argv += ["--log-dir", str(log_dir / name)]
        if args.quick:
            argv.append("--quick")
        result = subprocess.run(argv, cwd=BENCH_DIR)
        if result.returncode != 0 or not out.exists():
            print(
                f"!! {label} failed (exit {result.returncode}); "
                f"logs in {log_dir / name}"
            )
            tables.append({"title": label, "failed": True, "rows": []})
        else:
            tables.append(json.loads(out.read_text()))
        print(flush=True)

    print(f"== targets ({time.monotonic() - started:.0f} s in all; logs in {log_dir})")
    for table in tables:
        for row in table["rows"]:
            if row["met"] is None:
                continue
            verdict = "met " if row["met"] else "MISS"
            value = f"{format_value(row['value'])} {row['unit']}".strip()
            print(f"  {verdict}  {row['name']}: {value} (target {row['target']})")

    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "command": command,
                "machine": info,
                "wall_s": time.monotonic() - started,
                "benchmarks": tables,
            },
            indent=1,
            default=str,
        )
    )
    print(f"JSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
