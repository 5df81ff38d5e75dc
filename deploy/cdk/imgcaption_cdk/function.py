"""The captioning function: the container image of ``adapters/lambda``, fed by the queue through a ``live`` alias."""

import aws_cdk as cdk
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from imgcaption_cdk import defaults
from imgcaption_cdk.environment import function_environment
from imgcaption_cdk.nag import acknowledge
from imgcaption_cdk.settings import LOG_RETENTION_CHOICES, StackSettings

ALIAS_NAME = "live"

# Never sent to the Docker build: the repository root is the build context, and these are large or irrelevant.
# The root .dockerignore (an allow-list) is applied as well; this list is the second fence if it ever loosens.
ASSET_EXCLUDES = (
    ".git",
    ".venv",
    "**/.venv",
    "venv",
    "**/node_modules",
    "**/cdk.out",
    "**/__pycache__",
    "**/*.pyc",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".hypothesis",
    ".imgcaption",
    "*.db",
    "dist",
    "build",
    "out",
    "shared",
    "tests",
    "benchmarks",
    "deploy",
)

_ARCHITECTURES = {
    "x86_64": (lambda_.Architecture.X86_64, ecr_assets.Platform.LINUX_AMD64),
    "arm64": (lambda_.Architecture.ARM_64, ecr_assets.Platform.LINUX_ARM64),
}


def image_code(settings: StackSettings) -> lambda_.DockerImageCode:
    """The image asset: staged at synth (no Docker needed), built by ``cdk deploy``."""
    _, platform = _ARCHITECTURES[settings.architecture]
    return lambda_.DockerImageCode.from_image_asset(
        str(defaults.REPO_ROOT),
        file=defaults.DOCKERFILE,
        build_args={
            "MODEL_ID": settings.model_id,
            "MODEL_REVISION": settings.model_revision,
            "MODEL_FAMILY": settings.model_family,  # the build fails if the model's config.json names another
            "PRECISION": settings.precision,
        },
        # vit-gpt2 in int8 runs its ONNX artifact in the slim stage (no torch); every other family, and fp32, runs in
        # the stage with torch and transformers
        target=settings.image_target,
        cmd=[defaults.HANDLER_CMD],
        platform=platform,
        exclude=list(ASSET_EXCLUDES),
        ignore_mode=cdk.IgnoreMode.DOCKER,
    )


class CaptionFunction(Construct):
    """DockerImageFunction with its own least-privilege role, a retained log group, X-Ray, and an SQS trigger."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: StackSettings,
        table_name: str,
        code: lambda_.DockerImageCode,
    ) -> None:
        super().__init__(scope, construct_id)
        architecture, _ = _ARCHITECTURES[settings.architecture]

        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=logs.RetentionDays[LOG_RETENTION_CHOICES[settings.log_retention_days]],
            removal_policy=cdk.RemovalPolicy.RETAIN if settings.retain else cdk.RemovalPolicy.DESTROY,
        )
        # An explicit role instead of the default one: the default attaches the AWS-managed
        # AWSLambdaBasicExecutionRole, which may write to every log group of the account.
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="imgcaption function: read images, write captions, consume the queue, write its own logs",
        )
        self.log_group.grant_write(self.role)

        self.function = lambda_.DockerImageFunction(
            self,
            "Function",
            code=code,
            description="Captions images announced on the queue and stores the captions in DynamoDB",
            role=self.role,
            memory_size=settings.memory_mb,
            timeout=cdk.Duration.seconds(settings.timeout_s),
            architecture=architecture,
            reserved_concurrent_executions=settings.reserved_concurrency,
            tracing=lambda_.Tracing.ACTIVE,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            environment=function_environment(settings, table_name),
        )
        # Provisioned concurrency only applies to invocations of a version, so the queue always invokes the alias;
        # with provisioned_concurrency=0 the alias costs nothing.
        self.alias = lambda_.Alias(
            self,
            "Live",
            alias_name=ALIAS_NAME,
            version=self.function.current_version,
            provisioned_concurrent_executions=settings.provisioned_concurrency or None,
        )
        self._acknowledge_service_wildcards()

    def consume(self, queue: sqs.IQueue, settings: StackSettings) -> None:
        """Trigger the alias from the queue; failed records come back one by one (partial batch responses)."""
        self.alias.add_event_source(
            event_sources.SqsEventSource(
                queue,
                batch_size=settings.batch_size,
                max_batching_window=cdk.Duration.seconds(settings.max_batching_window_s),
                max_concurrency=settings.max_concurrency,
                report_batch_item_failures=True,
            )
        )

    def _acknowledge_service_wildcards(self) -> None:
        """The role's only wildcard: X-Ray's write APIs, which have no resource-level permissions."""
        acknowledge(
            self.role,
            "AwsSolutions-IAM5[Resource::*]",
            "xray:PutTraceSegments and xray:PutTelemetryRecords (added by active tracing) do not support "
            "resource-level permissions; AWS documents Resource '*' for them. No other statement uses '*'.",
        )
