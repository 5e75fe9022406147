# The tf-zoneout service: FastAPI over the SavedModels mounted at /models (MODEL_BASE/NAME/VERSION).
#   docker build -t tf-zoneout .
#   docker run -p 8000:8000 -v "$PWD/models:/models:ro" tf-zoneout
# On an NVIDIA GPU (TensorFlow with its CUDA libraries as pip wheels; the host needs the NVIDIA driver
# and the NVIDIA Container Toolkit; not built or run on this project's machines, which have no GPU):
#   docker build --build-arg EXTRAS=serve,gpu -t tf-zoneout-gpu .
#   docker run --gpus all -p 8000:8000 -v "$PWD/models:/models:ro" tf-zoneout-gpu
FROM python:3.11-slim

# The package's extras to install: serve (the CPU image) or serve,gpu.
ARG EXTRAS=serve

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    ZONEOUT_MODEL_BASE=/models

WORKDIR /app
COPY pyproject.toml README.md ./
COPY tf_zoneout ./tf_zoneout
COPY train ./train
COPY serve ./serve
# The project itself is installed from source; its dependencies are bounded in pyproject.toml.
# hadolint ignore=DL3013
RUN pip install ".[${EXTRAS}]" \
    && useradd --create-home --uid 10001 zoneout

USER 10001
VOLUME ["/models"]
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4).status != 200)"]
CMD ["uvicorn", "--factory", "tf_zoneout_serve.app:create_app", "--host", "0.0.0.0", "--port", "8000"]
