# One image for every role: API, job worker, Ray head and Ray workers (Ray and Python must
# match across a cluster, so they all share it).
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    LIGHTSEARCH_DATA_DIR=/data

WORKDIR /app
# The CPU build of torch first: the default index would pull a multi-GB CUDA build.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

COPY pyproject.toml README.md ./
COPY spaces spaces
COPY agents agents
COPY search search
COPY service service
COPY examples examples
RUN pip install . \
    && useradd --create-home --uid 1000 lightsearch \
    && mkdir -p /data && chown lightsearch /data

USER lightsearch
EXPOSE 8000
CMD ["python", "-m", "service.cli", "serve", "--host", "0.0.0.0", "--port", "8000"]
