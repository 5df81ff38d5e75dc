"""Rerun the recorded benchmark and write BENCHMARKS.md-ready markdown plus raw JSON.

    python benchmarks/run.py /tmp/vitgpt2-full --out benchmarks/results

builds the full-size random-weight model first if MODEL_DIR does not exist. Same code as ``imgcaption bench``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from imgcaption.bench.report import render
from imgcaption.bench.runner import BenchConfig, run_benchmark
from imgcaption.testing.random_model import save_random_model
from imgcaption.testing.scene_model import SCENE_CAPTIONER_DIR


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--artifact", type=Path, default=None, help="torch int8 artifact (built if absent)")
    parser.add_argument("--onnx-artifact", type=Path, default=None, help="int8 ONNX Runtime artifact (built if absent)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--cold-runs", type=int, default=3)
    args = parser.parse_args()
    if not args.model_dir.exists():
        print(f"building the full-size random model in {args.model_dir}", file=sys.stderr)
        save_random_model(args.model_dir, "full", seed=0)
    args.out.mkdir(parents=True, exist_ok=True)
    result = run_benchmark(
        BenchConfig(
            model_dir=args.model_dir,
            artifact_dir=args.artifact,
            onnx_artifact_dir=args.onnx_artifact,
            threads=args.threads,
            throughput_threads=args.threads,
            repeats=args.repeats,
            batch_sizes=args.batch_sizes,
            cold_start_runs=args.cold_runs,
            fidelity_model=SCENE_CAPTIONER_DIR if (SCENE_CAPTIONER_DIR / "model.safetensors").is_file() else None,
            progress=lambda message: print(message, file=sys.stderr, flush=True),
        )
    )
    (args.out / "result.json").write_text(result.to_json())
    (args.out / "report.md").write_text(render(result))
    print(render(result))


if __name__ == "__main__":
    main()
