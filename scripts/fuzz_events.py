"""Fuzz the Lambda's event parser for a set time: ``python scripts/fuzz_events.py --minutes 30``.

Not a test, and CI does not run it. Every input must end as what the parser promises: a list of object references
(each ``s3://bucket/key`` with a bucket), or an :class:`~imgcaption_aws.events.EventParseError`; and an event built
from any bucket and key must give back exactly that key. Anything else (another exception, a reference without a
bucket, a key that does not round-trip) is a finding, saved under ``--out`` to become a test case once fixed.

Inputs (hypothesis at scale, no coverage feedback): the real event JSON files of ``tests/events`` mutated (fields
removed, retyped or replaced by arbitrary JSON, wrapped in SQS / SNS envelopes, nested deep), arbitrary JSON, and
arbitrary text as SQS message bodies. A summary is written to ``OUT/summary.json``.
"""

from __future__ import annotations

import argparse
import collections
import copy
import hashlib
import json
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgcaption_aws.events import EventParseError, notification_record, refs_from_body, refs_from_event

EVENTS = Path(__file__).parents[1] / "tests" / "events"
SEEDS = [json.loads(path.read_text()) for path in sorted(EVENTS.glob("*.json"))]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside a JSON document."""
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += paths(child, (*prefix, index))
    return found


@st.composite
def mutated_events(draw: st.DrawFn) -> Any:
    event = copy.deepcopy(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        targets = [path for path in paths(event) if path]
        if not targets:
            break
        path = draw(st.sampled_from(targets))
        parent = event
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["delete", "replace", "stringify", "nest"]))
        if action == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif action == "replace":
            parent[path[-1]] = draw(json_values)
        elif action == "stringify":
            parent[path[-1]] = json.dumps(parent[path[-1]])
        else:
            parent[path[-1]] = [[parent[path[-1]]]] * draw(st.integers(1, 3))
    return event


def sqs_of(body: str) -> dict[str, Any]:
    return {"Records": [{"eventSource": "aws:sqs", "messageId": "m", "body": body}]}


bodies = (
    st.text(max_size=200)
    | json_values.map(json.dumps)
    | mutated_events().map(json.dumps)
    | mutated_events().map(lambda event: json.dumps({"Type": "Notification", "Message": json.dumps(event)}))
    | st.integers(10, 100_000).map(lambda depth: "[" * depth + "]" * depth)
)
events = mutated_events() | json_values | bodies.map(sqs_of)
keys = st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=200)


class Score:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.inputs = 0
        self.outcomes: collections.Counter[str] = collections.Counter()
        self.findings: dict[str, str] = {}

    def check(self, parse: Any, value: Any) -> None:
        self.inputs += 1
        try:
            refs = parse(value)
        except EventParseError:
            self.outcomes["EventParseError"] += 1
            return
        except Exception:
            self.finding(value, traceback.format_exc())
            return
        bad = [ref.uri for ref in refs if not ref.uri.startswith("s3://") or ref.uri[5:].startswith("/")]
        if bad:
            self.finding(value, f"references without a bucket: {bad[:3]}")
        self.outcomes[f"{len(refs)} refs" if len(refs) < 3 else "3+ refs"] += 1

    def check_round_trip(self, bucket: str, key: str) -> None:
        self.inputs += 1
        body = json.dumps({"Records": [notification_record(bucket, key)]})
        try:
            (ref,) = refs_from_body(body)
        except Exception:
            self.finding(body, traceback.format_exc())
            return
        if ref.uri != f"s3://{bucket}/{key}":
            self.finding(body, f"key {key!r} came back as {ref.uri!r}")
        self.outcomes["round trip"] += 1

    def finding(self, value: Any, what: str) -> None:
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        if digest not in self.findings:
            (self.out / f"finding-{digest}.json").write_text(json.dumps({"input": text, "what": what}, indent=2))
            self.findings[digest] = what.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, required=True)
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "imgcaption-fuzz-events")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    score = Score(args.out)
    deadline = time.monotonic() + args.minutes * 60
    fuzz_settings = settings(
        max_examples=2_000, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )

    @fuzz_settings
    @given(events)
    def fuzz_events(event: Any) -> None:
        score.check(lambda value: refs_from_event(value) if isinstance(value, dict) else [], event)

    @fuzz_settings
    @given(bodies)
    def fuzz_bodies(body: str) -> None:
        score.check(refs_from_body, body)

    @fuzz_settings
    @given(st.from_regex(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", fullmatch=True), keys)
    def fuzz_round_trip(bucket: str, key: str) -> None:
        score.check_round_trip(bucket, key)

    started = time.monotonic()
    rounds = 0
    while time.monotonic() < deadline:
        for target in (fuzz_events, fuzz_bodies, fuzz_round_trip):
            target()
        rounds += 1
    summary = {
        "minutes": round((time.monotonic() - started) / 60, 1),
        "rounds": rounds,
        "inputs": score.inputs,
        "outcomes": dict(score.outcomes),
        "findings": score.findings,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
