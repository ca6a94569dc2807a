"""Time ``shadowfn report`` on a large generated log and record its peak resident memory.

    python benchmarks/report_memory.py --size-mb 1024

Writes the codec example's log (examples/report_demo.py, real shadowfn events
on ISO 3166 data), repeats its events with fresh keys, timestamps and diverging
paths until the file reaches the requested size, runs ``python -m shadowfn report
--format json`` on it in a child process and prints the wall time and the
child's peak RSS. The generated files are deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import runpy
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def generate(source: Path, target: Path, size: int) -> int:
    """Repeat the events of ``source`` into ``target`` until it contains ``size`` bytes; return the line count."""
    templates = source.read_text(encoding="utf-8").splitlines()
    lines = 0
    written = 0
    with target.open("w", encoding="utf-8") as out:
        while written < size:
            for template in templates:
                event = json.loads(template)
                event["key"] = f"{lines * 7919 % (1 << 64):016x}"
                event["timestamp"] = 1_796_000_000 + lines / 100
                if event["event"] == "shadow.divergence" and event["diff"]["body"] is not None:
                    for change in event["diff"]["body"]["changes"]:
                        change["path"] = f"{change['path']}.v{lines % 2000}"
                line = json.dumps(event) + "\n"
                out.write(line)
                written += len(line.encode("utf-8"))
                lines += 1
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="size of the generated log in MiB")
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where to write the log")
    args = parser.parse_args()

    demo = runpy.run_path(str(Path(__file__).parent.parent / "examples" / "report_demo.py"))
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        source = Path(scratch) / "codec.log"
        big = Path(scratch) / "big.log"
        demo["write_log"](str(source), rounds=2, pause=0.0)
        started = time.perf_counter()
        lines = generate(source, big, args.size_mb * 1024 * 1024)
        print(f"generated {big.stat().st_size} bytes, {lines} lines in {time.perf_counter() - started:.1f} s")

        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "shadowfn", "report", "--format", "json", str(big)],
            stdout=subprocess.PIPE,
            check=True,
        )
        elapsed = time.perf_counter() - started
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        report = json.loads(result.stdout)
        print(
            f"report: {elapsed:.1f} s, {big.stat().st_size / elapsed / 1e6:.1f} MB/s, peak RSS {peak_kib / 1024:.1f} MiB"
        )
        print(f"events {report['events']}, functions {[f['function'] for f in report['functions']]}")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
