"""Rerun the recorded benchmark and write BENCHMARKS.md-ready markdown plus raw JSON.

    python benchmarks/run.py /tmp/vitgpt2-full --out benchmarks/results [imgcaption bench options…]

builds the full-size random-weight model first if MODEL_DIR does not exist, then runs ``imgcaption bench`` itself
(the same command, options and defaults), writing ``result.json`` and ``report.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from imgcaption.testing.random_model import save_random_model
from imgcaption_cli.bench_commands import bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args, bench_options = parser.parse_known_args()
    if not args.model_dir.exists():
        print(f"building the full-size random model in {args.model_dir}", file=sys.stderr)
        save_random_model(args.model_dir, "full", seed=0)
    args.out.mkdir(parents=True, exist_ok=True)
    outputs = ["--json", str(args.out / "result.json"), "--markdown", str(args.out / "report.md")]
    bench.main([str(args.model_dir), *outputs, *bench_options], prog_name="benchmarks/run.py")


if __name__ == "__main__":
    main()
