"""The demo and the benchmark paint their example photos instead of reading a checkout's ``examples/`` folder."""

from __future__ import annotations

from pathlib import Path

from imgcaption.local.examples import EXAMPLES, write_example_images

CHECKOUT_EXAMPLES = Path(__file__).parents[2] / "examples"


def test_painted_examples_are_byte_for_byte_the_committed_ones(tmp_path: Path) -> None:
    painted = write_example_images(tmp_path)
    assert [path.name for path in painted] == sorted(EXAMPLES)
    for path in painted:
        assert path.read_bytes() == (CHECKOUT_EXAMPLES / path.name).read_bytes(), path.name
