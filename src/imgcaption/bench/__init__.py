"""The benchmark behind ``imgcaption bench`` and ``BENCHMARKS.md``: every mode against the baseline, same run.

:mod:`~imgcaption.bench.runner` measures, :mod:`~imgcaption.bench.report` renders markdown,
:mod:`~imgcaption.bench.lambda_cost` turns seconds per image into Lambda dollars and capacity.
"""
