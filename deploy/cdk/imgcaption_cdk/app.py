"""Build the CDK app: ``cdk.json`` context, then the stack, then cdk-nag.

``build_app`` is what both ``deploy/cdk/app.py`` (the ``cdk`` CLI entry point) and the tests call, so the tests
synthesize exactly what ``cdk synth`` would.
"""

import json
import os
from pathlib import Path
from typing import Any

import aws_cdk as cdk

from imgcaption_cdk.nag import add_nag_checks
from imgcaption_cdk.settings import StackSettings
from imgcaption_cdk.stack import ImgCaptionStack

CDK_JSON = Path(__file__).resolve().parent.parent / "cdk.json"


def cdk_json_context() -> dict[str, Any]:
    """The ``context`` object of ``cdk.json`` (feature flags and the ``imgcaption`` settings)."""
    context: dict[str, Any] = json.loads(CDK_JSON.read_text(encoding="utf-8")).get("context", {})
    return context


def build_app(
    context: dict[str, Any] | None = None, *, outdir: str | None = None, nag: bool = True
) -> tuple[cdk.App, ImgCaptionStack]:
    """An app with one stack. ``context`` overrides ``cdk.json``; the CLI's ``-c`` values override both."""
    app = cdk.App(context={**cdk_json_context(), **(context or {})}, outdir=outdir)
    settings = StackSettings.from_context(app.node)
    env = cdk.Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION"))
    stack = ImgCaptionStack(
        app,
        settings.stack_name,
        settings=settings,
        env=env,
        description="imgcaption: S3 -> SQS -> Lambda (container) -> DynamoDB image captioning",
    )
    cdk.Tags.of(app).add("project", "imgcaption")
    if nag:
        add_nag_checks(app)
    return app, stack


def main() -> None:
    app, _ = build_app()
    app.synth()
