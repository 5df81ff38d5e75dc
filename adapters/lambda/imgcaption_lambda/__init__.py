"""The AWS Lambda entry point of imgcaption: :func:`imgcaption_lambda.handler.handler` (container image CMD)."""
