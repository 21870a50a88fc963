"""The embedded local stack behind `audiomixer dev`: moto, the template's resources, SQS pollers, a local
Batch runner and a WebSocket gateway, so the whole backend runs on one machine without Docker or AWS.

Tests build fixtures with `create_resources(template_path)` inside moto's `mock_aws` (no server needed);
`LocalStack(StackConfig(...))` runs everything, as `audiomixer dev` does."""

from audiomixer_local.resources import (
    FunctionSpec,
    LocalResources,
    QueueInfo,
    SqsSource,
    WebSocketSpec,
    create_resources,
    describe_template,
)

__all__ = [
    "FunctionSpec",
    "LocalResources",
    "QueueInfo",
    "SqsSource",
    "WebSocketSpec",
    "create_resources",
    "describe_template",
]
