# deepfakescan on the CPU: one image for web nodes (the default command) and for scan workers
# (`deepfakescan worker`, see compose.yaml). The models ship inside the package, so the image
# needs nothing downloaded at run time. Serving runs on ONNX Runtime only: the [scale] extra
# (Celery on Redis, psycopg for PostgreSQL) is installed, PyTorch ([train]) is not.
#
#   docker build -t deepfakescan .
#   docker run -p 8000:8000 -v deepfakescan-data:/data deepfakescan     # embedded mode
#   docker compose up                                                   # 2 web, 2 workers

FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/deepfakescan
WORKDIR /src
# pyproject.toml names README.md and LICENSE; src/ carries the package and its models
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN /opt/deepfakescan/bin/pip install ".[scale,provenance]"


FROM python:3.11-slim

ENV PATH=/opt/deepfakescan/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DEEPFAKESCAN_DATA_DIR=/data
COPY --from=build /opt/deepfakescan /opt/deepfakescan

# A fixed numeric id, so that a volume or a bind mount can be given to it on every node.
# /data is created owned by it: Docker copies that ownership into a new named volume.
RUN groupadd --system --gid 10001 deepfakescan \
    && useradd --system --uid 10001 --gid deepfakescan --home-dir /home/deepfakescan \
        --create-home --shell /usr/sbin/nologin deepfakescan \
    && mkdir -p /data \
    && chown deepfakescan:deepfakescan /data
VOLUME ["/data"]
USER deepfakescan
WORKDIR /home/deepfakescan

EXPOSE 8000
CMD ["deepfakescan", "serve", "--host", "0.0.0.0"]
