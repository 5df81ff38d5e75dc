"""CDK (v2, Python) deployment of imgcaption: S3 -> SQS -> Lambda container -> DynamoDB."""

from imgcaption_cdk.settings import StackSettings
from imgcaption_cdk.stack import ImgCaptionStack

__all__ = ["ImgCaptionStack", "StackSettings"]
