"""Fault injection at a larger size than CI's: prints what it did (seed, faults injected, SIG
operations, applications and their final states) and what it found (problems, convergence time).

Usage: python bench/faults.py [--seed N] [--apps 40] [--sig-ops 10] [--faults 12] [--runs 1] [--converge-timeout 900]
Exit code 1 if any run found a problem (the seed replays it).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# bench/ holds docker.py, which would shadow the docker package: keep it off the path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

from tests.chaos import Chaos, Plan, supervised_stack  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--apps", type=int, default=40)
    parser.add_argument("--sig-ops", type=int, default=10)
    parser.add_argument("--faults", type=int, default=12)
    parser.add_argument("--runs", type=int, default=1)
    # 40 applications queue behind at most 4 drivers per master: allow them time to drain.
    parser.add_argument("--converge-timeout", type=float, default=900.0)
    args = parser.parse_args()
    failed = 0
    for run in range(args.runs):
        seed = args.seed if args.seed is not None else time.time_ns() % 1_000_000
        tmp = Path(tempfile.mkdtemp(prefix="spaas-faults-"))
        with supervised_stack(tmp / "state") as stack:
            report = Chaos(stack, Plan(seed=seed, apps=args.apps, sig_ops=args.sig_ops, faults=args.faults,
                                        converge_timeout_s=args.converge_timeout),
                           log=lambda line: print(line, flush=True)).run()
        if report.problems:
            print(f"  state kept for diagnosis (logs, storage, runtime): {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        print(f"run {run + 1}: {report.summary()}")
        for problem in report.problems:
            print(f"  PROBLEM {problem}")
        failed += bool(report.problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
