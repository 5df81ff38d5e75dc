"""Fuzz the image loader's ``decode_bytes`` for a set time: ``python scripts/fuzz_decode.py --minutes 30``.

Not a test, and CI does not run it: it looks for inputs the unit tests' hypothesis properties have not met. Every
input must end as what the loader promises: an upright RGB image within the reduction's bounds whose reported size
has its shape, or an :class:`~imgcaption.errors.ImageError` naming the input; within ``--timeout-s`` seconds, and
without running out of a ``--memory-gb`` address space (the inputs are small and the pixel cap is 16 MP, so
running out means something allocates without bound). Anything else is a finding: the input is saved under
``--out`` with what happened, to become a corpus case once fixed.

Engines: ``atheris`` (coverage-guided over Pillow's Python plugins and imgcaption; ``pip install atheris``) when
it is installed, else ``hypothesis`` (mutations of seed images and random bytes behind real signatures, no
coverage feedback). Both start from seeds: small images of every format and mode Pillow writes here, and the
hostile corpus. A summary (duration, inputs, outcomes, findings) is written to ``OUT/summary.json``.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import importlib.util
import io
import json
import resource
import signal
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

MAX_PIXELS = 16_000_000
SOURCE = "fuzz-input"


class DecodeTookTooLong(Exception):
    """Raised by the per-input alarm: the loader did not finish in time."""


class Fuzzer:
    """Runs one input at a time through the loader and keeps the score."""

    def __init__(self, out: Path, timeout_s: float) -> None:
        from imgcaption import images

        self.images = images
        self.out = out
        self.timeout_s = timeout_s
        self.started = time.monotonic()
        self.inputs = 0
        self.outcomes: collections.Counter[str] = collections.Counter()
        self.findings: dict[str, dict[str, str]] = {}
        signal.signal(signal.SIGALRM, self._alarm)

    def _alarm(self, signum: int, frame: FrameType | None) -> None:
        raise DecodeTookTooLong(f"no outcome after {self.timeout_s} s")

    def check(self, data: bytes) -> None:
        """Decode ``data``; record the outcome, and save the input when it breaks a promise. Never raises."""
        self.inputs += 1
        problem: str | None = None
        signal.setitimer(signal.ITIMER_REAL, self.timeout_s)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # as in production: Pillow's damage warnings are only logged
                loaded = self.images.decode_bytes(data, source=SOURCE, max_pixels=MAX_PIXELS)
            signal.setitimer(signal.ITIMER_REAL, 0)
            problem = self._broken_promise(loaded)
            self.outcomes["ok"] += 1
        except self.images.ImageError as error:
            signal.setitimer(signal.ITIMER_REAL, 0)
            self.outcomes[type(error).__name__] += 1
            if error.source != SOURCE:
                problem = f"error does not name its input: {error!r}"
            elif "ran out of memory" in error.message:
                problem = f"ran out of memory on a {len(data)}-byte input: {error.message}"
        except BaseException as error:  # the point of fuzzing: everything else is a finding, Ctrl-C included
            signal.setitimer(signal.ITIMER_REAL, 0)
            if isinstance(error, KeyboardInterrupt):
                raise
            self.outcomes[f"finding: {type(error).__name__}"] += 1
            problem = "".join(traceback.format_exception(error))
        if problem is not None:
            self._save(data, problem)

    def _broken_promise(self, loaded: Any) -> str | None:
        width, height = loaded.image.size
        if loaded.image.mode != "RGB":
            return f"decoded to mode {loaded.image.mode}, not RGB"
        if (width, height) != self.images.reduced_size(width, height):
            return f"{width}×{height} is not reduced to what the model needs"
        if not 0 < loaded.width * loaded.height <= MAX_PIXELS:
            return f"reported size {loaded.width}×{loaded.height} is outside the pixel cap"
        if abs(width * loaded.height - height * loaded.width) > loaded.width + loaded.height:
            return f"image {width}×{height} does not have the shape of its reported {loaded.width}×{loaded.height}"
        return None

    def _save(self, data: bytes, problem: str) -> None:
        digest = hashlib.sha256(data).hexdigest()[:16]
        if digest in self.findings:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / f"finding-{digest}.bin").write_bytes(data)
        (self.out / f"finding-{digest}.txt").write_text(problem)
        self.findings[digest] = {"bytes": str(len(data)), "problem": problem.strip().splitlines()[-1][:300]}
        print(f"finding {digest}: {self.findings[digest]['problem']}", file=sys.stderr, flush=True)

    def summary(self, engine: str) -> dict[str, Any]:
        return {
            "engine": engine,
            "seconds": round(time.monotonic() - self.started),
            "inputs": self.inputs,
            "outcomes": dict(self.outcomes.most_common()),
            "findings": self.findings,
        }

    def write_summary(self, engine: str) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "summary.json").write_text(json.dumps(self.summary(engine), indent=2) + "\n")


# ----------------------------------------------------------------------------- seeds


def seed_images() -> Iterator[bytes]:
    """Small images of every format and mode Pillow can write here, and the hostile corpus's files."""
    from PIL import Image

    from imgcaption.testing import corpus

    base = Image.new("RGB", (40, 24), (255, 255, 255))
    base.paste((200, 30, 30), (0, 0, 20, 12))
    base.paste((30, 30, 200), (20, 12, 40, 24))
    variants: list[tuple[str, str, dict[str, Any]]] = [
        ("PNG", mode, {}) for mode in ("1", "L", "LA", "P", "RGB", "RGBA", "I;16")
    ]
    variants += [("PNG", "P", {"transparency": 0}), ("PNG", "RGB", {"transparency": (255, 255, 255)})]
    variants += [("JPEG", mode, {}) for mode in ("L", "RGB", "CMYK")] + [("JPEG", "RGB", {"progressive": True})]
    variants += [("GIF", "P", {}), ("BMP", "RGB", {}), ("TIFF", "RGB", {"compression": "tiff_lzw"})]
    variants += [("TIFF", "F", {}), ("WEBP", "RGBA", {"lossless": True}), ("WEBP", "RGB", {"quality": 50})]
    variants += [("ICO", "RGBA", {}), ("PPM", "RGB", {}), ("TGA", "RGB", {}), ("JPEG2000", "RGB", {})]
    variants += [("AVIF", "RGB", {}), ("HEIF", "RGB", {})]
    for fmt, mode, params in variants:
        image = base.convert("L").convert("F") if mode == "F" else base.convert(mode)
        buffer = io.BytesIO()
        try:
            image.save(buffer, fmt, **params)
        except (KeyError, OSError, ValueError):  # a codec this Pillow lacks: no seed of that kind
            continue
        yield buffer.getvalue()
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    base.save(buffer, "JPEG", exif=exif.tobytes())
    yield buffer.getvalue()
    with tempfile.TemporaryDirectory() as directory:
        for entry in corpus.write_corpus(directory):
            path = Path(directory) / entry.name
            if path.is_file() and path.stat().st_mode & 0o400 and 0 < path.stat().st_size <= 65_536:
                yield path.read_bytes()


# ----------------------------------------------------------------------------- engines


def run_hypothesis(fuzzer: Fuzzer, seconds: float) -> None:
    """Mutated seeds and random bytes behind real signatures, in rounds until the time is up."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st

    seeds = list(seed_images())
    magic = fuzzer.images.known_signatures()  # the loader's own table: every format it sniffs

    @st.composite
    def mutated(draw: Callable[..., Any]) -> bytes:
        data = bytearray(draw(st.sampled_from(seeds)))
        for _ in range(draw(st.integers(1, 6))):
            kind = draw(st.sampled_from(["flip", "flip", "insert", "truncate", "splice", "duplicate"]))
            at = draw(st.integers(0, max(0, len(data) - 1)))
            if kind == "flip" and data:
                data[at] ^= 1 << draw(st.integers(0, 7))
            elif kind == "insert":
                data[at:at] = draw(st.binary(min_size=1, max_size=32))
            elif kind == "truncate":
                del data[at:]
            elif kind == "splice":  # a piece of another seed: chunks and markers where they are not expected
                other = draw(st.sampled_from(seeds))
                start = draw(st.integers(0, max(0, len(other) - 1)))
                data[at:at] = other[start : start + draw(st.integers(1, 256))]
            else:
                length = draw(st.integers(1, 64))
                data[at:at] = data[at : at + length]
        return bytes(data)

    behind_magic = st.builds(lambda head, rest: head + rest, st.sampled_from(magic), st.binary(max_size=4096))
    inputs = st.one_of(mutated(), mutated(), behind_magic)
    deadline = time.monotonic() + seconds

    @settings(
        max_examples=2_000,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(inputs)
    def one_round(data: bytes) -> None:
        if time.monotonic() < deadline:
            fuzzer.check(data)

    while time.monotonic() < deadline:
        one_round()
        fuzzer.write_summary("hypothesis")


def run_atheris(fuzzer: Fuzzer, seconds: float, work: Path) -> None:
    """libFuzzer's coverage-guided mutations, seeded with the same images."""
    import atheris

    seeds = work / "seeds"
    seeds.mkdir(parents=True, exist_ok=True)
    for data in seed_images():
        (seeds / hashlib.sha256(data).hexdigest()[:16]).write_bytes(data)
    grown = work / "grown"  # libFuzzer adds the inputs that reached new code here
    grown.mkdir(exist_ok=True)

    def one_input(data: bytes) -> None:
        fuzzer.check(data)
        if fuzzer.inputs % 2_000 == 0:
            fuzzer.write_summary("atheris")

    arguments = [sys.argv[0], f"-max_total_time={int(seconds)}", "-max_len=65536", "-rss_limit_mb=0", "-timeout=0"]
    atheris.Setup([*arguments, str(grown), str(seeds)], one_input)
    try:
        atheris.Fuzz()
    finally:  # libFuzzer ends the process when its time is up: the summary written every 2,000 inputs stands
        fuzzer.write_summary("atheris")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, required=True, help="how long to fuzz")
    parser.add_argument("--engine", choices=["auto", "atheris", "hypothesis"], default="auto")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "imgcaption-fuzz-decode")
    parser.add_argument("--timeout-s", type=float, default=10.0, help="longest one input may take")
    parser.add_argument("--memory-gb", type=float, default=4.0, help="address-space limit for the process")
    arguments = parser.parse_args()
    limit = int(arguments.memory_gb * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    engine = arguments.engine
    if engine == "auto":
        engine = "atheris" if importlib.util.find_spec("atheris") is not None else "hypothesis"
    if engine == "atheris":
        import atheris

        with atheris.instrument_imports(include=["PIL", "imgcaption"]):
            fuzzer = Fuzzer(arguments.out, arguments.timeout_s)
        run_atheris(fuzzer, arguments.minutes * 60, arguments.out)
    else:
        fuzzer = Fuzzer(arguments.out, arguments.timeout_s)
        run_hypothesis(fuzzer, arguments.minutes * 60)
        fuzzer.write_summary("hypothesis")
    print(json.dumps(fuzzer.summary(engine), indent=2))


if __name__ == "__main__":
    main()
