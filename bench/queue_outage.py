"""A Redis outage under load, as issue 14 describes it: log lines, tracebacks and CPU per gateway.

Two gateways on one Redis queue (a private, append-only redis-server), hits flowing, the server
killed for ``--seconds`` and started again (``tests/system/outage.py`` runs it; the system test
asserts on it). ``--tree DIR`` runs the gateways from another source tree (``DIR/src`` first on
``PYTHONPATH``), to compare with the code before a change.

Prints, per gateway: warning and error lines and tracebacks logged from the kill until a second
after the restart, and the share of one core the gateway used during the outage; then the hits
answered 204 and refused, and the acknowledged hits TikTok never got.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for tests.*

from tests.system.outage import run_outage

import servers


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="how long Redis is down")
    parser.add_argument("--tree", type=Path, help="run the gateways from this source tree")
    args = parser.parse_args()
    print(f"machine: {servers.machine()}")
    env = {"PYTHONPATH": str(args.tree.resolve() / "src")} if args.tree else {}
    with tempfile.TemporaryDirectory(prefix="bench-outage-") as tmp:
        report = run_outage(Path(tmp), outage=args.seconds, env=env)
    print(f"tree: {args.tree or 'this one'}; Redis down {report.outage_seconds:.1f} s")
    for n, (lines, tracebacks, cpu) in enumerate(
        zip(report.lines, report.tracebacks, report.cpu, strict=True)
    ):
        print(f"gateway {n}: {lines} warning/error lines, {tracebacks} tracebacks, "
              f"{100 * cpu:.0f}% of a core during the outage")  # fmt: skip
    print(f"hits: {report.accepted} answered 204, {report.refused} refused; "
          f"acknowledged but never delivered: {len(report.lost)}")  # fmt: skip


if __name__ == "__main__":
    main()
