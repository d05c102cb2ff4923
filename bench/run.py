"""keysentry benchmarks: each figure measured next to its floor in the same run, reported as ratios.

Run with ``make bench`` (``python -m bench.run`` from the project root). Prints a table and writes
bench/results.json. Nothing here is a test: shared machines are noisy, so budgets are judged on
medians of repeated batches, side by side.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from typing import Any

from bench.common import ROOT  # first: it sets the environment every figure runs in


def _print(rows: list[dict[str, Any]], machine: str) -> None:
    print(f"\nkeysentry benchmarks ({machine}); medians, microseconds\n")
    header = f"{'figure':<62} {'value':>11} {'floor':>10} {'ratio':>7}  {'budget':<34} met"
    print(header)
    print("-" * len(header))
    for r in rows:
        value = "-" if r["value_us"] is None else f"{r['value_us']:,.2f}"
        floor = "-" if r["floor_us"] is None else f"{r['floor_us']:,.2f}"
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}x"
        met = {True: "yes", False: "NO", None: "-"}[r["met"]]
        print(f"{r['figure']:<62} {value:>11} {floor:>10} {ratio:>7}  {r['budget']:<34} {met}")
        print(f"{'':<62} {r['note']}")


def main() -> int:
    from keysentry import aws
    from keysentry_dev import local
    from moto import mock_aws

    from bench.authorizer import authorizer_figures
    from bench.signing import signing_figures
    from bench.system import alerts_figures, cold_import_figures, rotation_figures
    from bench.usage import usage_figures

    rows: list[dict[str, Any]] = []
    with mock_aws():
        aws.reset()
        stack = local.provision()
        os.environ.update(stack.function_environment())
        authorizer_figures(rows)
        usage_figures(rows)
    signing_figures(rows)
    cold_import_figures(rows)
    rotation_figures(rows)
    alerts_figures(rows)

    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"
    _print(rows, machine)
    out = ROOT / "bench" / "results.json"
    document = {"machine": machine, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "rows": rows}
    out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nwritten: {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
