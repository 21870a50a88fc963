#!/bin/sh
# LocalStack runs this once the services are up. It creates template.yaml's tables, queues (+ DLQs and
# redrive) and the bucket with its uploads/ -> IngestQueue notification, then writes the AUDIOMIXER_*
# environment to /tmp/audiomixer.env.
set -eu
PY=/opt/code/localstack/.venv/bin/python
[ -x "$PY" ] || PY=python3
AWS_ENDPOINT_URL="${AWS_ENDPOINT_URL:-http://localhost:4566}" \
AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}" \
AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}" \
  "$PY" /etc/localstack/init/create_resources.py
