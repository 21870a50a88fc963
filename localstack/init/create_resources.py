"""Create template.yaml's data plane (tables, queues + DLQs, the bucket and its ingest notification) in
LocalStack, named as the embedded local stack names them ({StackName}-{LogicalId}), and write the
AUDIOMIXER_* environment that points the code at them.

The resources are built by the embedded local stack's own builder (audiomixer_local.resources), so the
template is read in one place only. Runs inside the LocalStack container from ready.d/ (LocalStack's own
interpreter has boto3 and PyYAML; docker-compose.yml mounts audiomixer_local beside this folder), or from a
host shell: AWS_ENDPOINT_URL=http://localhost:4566 python localstack/init/create_resources.py.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# localstack/ in the repository, /etc/localstack/ in the container: where audiomixer_local lives.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from audiomixer_local.resources import create_resources

STACK = os.environ.get("AUDIOMIXER_STACK_NAME", "audiomixer")


def create(template_path: Path, endpoint: str | None) -> dict[str, str]:
    """Create the data plane at `endpoint` (boto3's default when None) and return the environment."""
    resources = create_resources(template_path, endpoint_url=endpoint, stack_name=STACK, data_plane_only=True)
    return resources.env


def main() -> None:
    template = Path(os.environ.get("AUDIOMIXER_TEMPLATE", "/etc/localstack/audiomixer/template.yaml"))
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "http://localhost:4566")
    out = Path(os.environ.get("AUDIOMIXER_ENV_FILE", "/tmp/audiomixer.env"))
    env = create(template, endpoint)
    text = "".join(f"{k}={v}\n" for k, v in sorted(env.items()))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    sys.stdout.write(f"audiomixer: resources created; environment written to {out}\n{text}")


if __name__ == "__main__":
    main()
