"""Synthesis helpers shared by the infra tests (a plain module: test files import ``Synth`` from here)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk.assertions import Template

from imgcaption_cdk.app import build_app
from imgcaption_cdk.stack import ImgCaptionStack

# Every optional behaviour switched on or away from its default.
CUSTOM_SETTINGS: dict[str, Any] = {
    "stack_name": "ImgCaptionDev",
    "removal_policy": "destroy",
    "watch_prefix": "",
    "image_suffixes": [".png", ".jpg"],
    "notify_on_delete": True,
    "precision": "fp32",
    "num_beams": 3,
    "max_new_tokens": 20,
    "architecture": "arm64",
    "memory_mb": 4096,
    "timeout_s": 300,
    "reserved_concurrency": 10,
    "provisioned_concurrency": 2,
    "max_concurrency": 5,
    "batch_size": 20,
    "max_batching_window_s": 10,
    "max_receive_count": 3,
    "log_retention_days": 90,
    "oldest_message_age_alarm_s": 600,
    "alarm_email": "ops@example.com",
}


@dataclass(frozen=True)
class Synth:
    """One synthesized app: the construct tree, its template and the cloud assembly on disk."""

    app: cdk.App
    stack: ImgCaptionStack
    template: Template
    outdir: Path

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        resources: dict[str, dict[str, Any]] = self.template.to_json()["Resources"]
        return resources

    def logical_id(self, construct: Any) -> str:
        """Logical id of an L2 construct's CloudFormation resource."""
        return self.stack.get_logical_id(construct.node.default_child)

    def only(self, resource_type: str) -> tuple[str, dict[str, Any]]:
        """The single resource of a type (fails if there are several)."""
        found = self.template.find_resources(resource_type)
        assert len(found) == 1, f"expected one {resource_type}, found {sorted(found)}"
        return next(iter(found.items()))

    def assets_manifest(self) -> dict[str, Any]:
        manifest: dict[str, Any] = json.loads((self.outdir / f"{self.stack.artifact_id}.assets.json").read_text())
        return manifest


def synth(cdk_outdir: Path, context: dict[str, Any] | None = None, *, outdir: Path | None = None) -> Synth:
    """Build and synthesize an app; without ``outdir`` the assembly must land in CDK_OUTDIR (as for the CLI)."""
    app, stack = build_app(context, outdir=str(outdir) if outdir else None)
    app.synth()  # runs cdk-nag as a validation plugin: an unacknowledged finding fails here
    expected = outdir or cdk_outdir
    assert Path(app.outdir).resolve() == expected.resolve(), "the assembly must go where CDK_OUTDIR/outdir says"
    return Synth(app=app, stack=stack, template=Template.from_stack(stack), outdir=expected)
