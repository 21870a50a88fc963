# One image for the three audio functions (ingest, analyse, render). The numpy/scipy/librosa/numba stack is
# ~500 MB, over Lambda's 250 MB zip+layers limit, so these functions ship as container images.
#
#   docker build -f functions/audio.Dockerfile --build-arg FUNCTION=analyse -t audiomixer-analyse .
#   docker run --rm -p 9000:8080 audiomixer-analyse        # Lambda runtime interface emulator
#   curl -d @tests/events/analyse.json http://localhost:9000/2015-03-31/functions/function/invocations
#
# Why not FROM public.ecr.aws/lambda/python:3.11: that image is Amazon Linux 2 (glibc 2.26), and the
# versions pinned in pyproject.toml (numpy 2.4, numba 0.68, llvmlite 0.50, soxr 1.1) only publish
# manylinux_2_27/2_28 wheels. pip would fall back to building numpy from source and fail. So: the Lambda
# OS-only base on Amazon Linux 2023 (glibc 2.34), its python3.11, and AWS's runtime interface client.
FROM public.ecr.aws/lambda/provided:al2023

ENV LAMBDA_TASK_ROOT=/var/task \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NUMBA_CACHE_DIR=/opt/numba-cache \
    NUMBA_CPU_NAME=generic

# NUMBA_CPU_NAME=generic makes the cache valid on whatever CPU Lambda runs on (numba keys cache entries by
# CPU name + features); the cost is a few percent of speed in the jitted kernels.

RUN dnf install -y python3.11 python3.11-pip && dnf clean all && rm -rf /var/cache/dnf

# Dependencies first, from pyproject.toml with a placeholder package, so this layer survives source edits.
COPY pyproject.toml README.md /tmp/src/
RUN mkdir -p /tmp/src/layers/shared/audiomixer \
    && touch /tmp/src/layers/shared/audiomixer/__init__.py \
    && python3.11 -m pip install "/tmp/src[audio]" "aws-lambda-powertools[tracer]==3.37.0" "awslambdaric==4.2.2" \
    && python3.11 -m pip uninstall -y audiomixer \
    && rm -rf /tmp/src/layers

COPY layers/shared/audiomixer /tmp/src/layers/shared/audiomixer
RUN python3.11 -m pip install --no-deps "/tmp/src" && rm -rf /tmp/src \
    && python3.11 -c "import audiomixer.settings, av, librosa, soundfile, pyloudnorm, scipy.signal"

# Compile librosa's numba kernels now (~12 s on a fast CPU, far more on a 2-vCPU Lambda) for both float
# dtypes, so that a cold start loads them from the cache instead.
RUN mkdir -p "${NUMBA_CACHE_DIR}" && python3.11 -c "\
import numpy as np, librosa; \
sr = 22050; t = np.arange(sr * 3) / sr; \
[( \
  y := (0.5 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 2 * t) > 0)).astype(dt), \
  env := librosa.onset.onset_strength(y=y, sr=sr), \
  librosa.onset.onset_detect(onset_envelope=env, sr=sr, backtrack=True, units='samples'), \
  librosa.onset.onset_detect(y=y, sr=sr), \
  librosa.yin(y, fmin=40, fmax=2000, sr=sr), \
  librosa.pyin(y[: sr], fmin=60, fmax=1000, sr=sr), \
  librosa.feature.rms(y=y), librosa.feature.spectral_centroid(y=y, sr=sr), \
  librosa.feature.spectral_flatness(y=y), librosa.feature.mfcc(y=y, sr=sr), \
  librosa.effects.split(y), librosa.beat.beat_track(y=y, sr=sr), \
) for dt in (np.float32, np.float64)]; \
print('numba cache warmed')" \
    && chmod -R a+rX "${NUMBA_CACHE_DIR}"

# numba insists on a *writable* cache directory (it test-writes a temp file and, failing that, raises
# "cannot cache function ...: no locator available" at import), and only /tmp is writable on Lambda.
# So the baked cache is copied to /tmp once per execution environment before the runtime starts.
RUN printf '%s\n' \
    '#!/bin/sh' \
    'if [ ! -d /tmp/numba-cache ]; then cp -R /opt/numba-cache /tmp/numba-cache 2>/dev/null || mkdir -p /tmp/numba-cache; fi' \
    'export NUMBA_CACHE_DIR=/tmp/numba-cache' \
    'if [ $# -eq 0 ]; then set -- "functions/${AUDIOMIXER_FUNCTION}/app.handler"; fi' \
    'if [ -z "${AWS_LAMBDA_RUNTIME_API}" ] && [ -x /usr/local/bin/aws-lambda-rie ]; then' \
    '  exec /usr/local/bin/aws-lambda-rie /usr/bin/python3.11 -m awslambdaric "$@"' \
    'fi' \
    'exec /usr/bin/python3.11 -m awslambdaric "$@"' \
    > /usr/local/bin/audiomixer-entrypoint \
    && chmod 755 /usr/local/bin/audiomixer-entrypoint

WORKDIR ${LAMBDA_TASK_ROOT}
# Handlers are addressed as functions/<name>/app.handler (awslambdaric turns "/" into "." when importing).
COPY functions/ ${LAMBDA_TASK_ROOT}/functions/

# Last, so the three images (ingest, analyse, render) share every layer above: a build arg used earlier
# would make each function rebuild and re-push the whole dependency stack.
ARG FUNCTION=analyse
ENV AUDIOMIXER_FUNCTION=${FUNCTION}

ENTRYPOINT ["/usr/local/bin/audiomixer-entrypoint"]
# template.yaml's ImageConfig.Command overrides this; the default serves the image's own function.
CMD []
