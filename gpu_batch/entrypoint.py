"""AWS Batch entrypoint of the separation container (and, locally, the subprocess the local Batch
runner starts): `entrypoint.py TENANT_ID PROJECT_ID SOURCE_KEY`."""

import sys

from audiomixer.pipeline.separate import main

if __name__ == "__main__":
    sys.exit(main())
