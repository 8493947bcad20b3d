# syntax=docker/dockerfile:1
# One image for every driftline service: `docker run IMAGE run validator`, `... topics create`.
# Build: docker build -t driftline .      (docker-compose.yml builds it for the whole stack)
# PYTHON_IMAGE: the Python base of both stages, the official image unless told otherwise
# (`make compose-test` passes a stand-in built from Debian's packages where Docker Hub
# cannot be reached; see deploy/images/).
ARG PYTHON_IMAGE=python:3.11-slim

# -- build: the dependencies, then the package, as wheels (no compiler needed: all ship
# wheels). Dependencies first, from pyproject.toml alone, so a change of code rebuilds
# only the last, small layers.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml ./
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" > requirements.txt \
 && python -m pip wheel --wheel-dir /deps -r requirements.txt
COPY README.md LICENSE ./
COPY schemas ./schemas
COPY services ./services
RUN python -m pip wheel --no-deps --wheel-dir /wheels .

# -- runtime: the dependencies' wheels installed from the build stage (bind-mounted, so they
# add no layer; the requirements file keys the layer cache), then the package's own wheel
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="driftline" \
      org.opencontainers.image.description="Event-driven retraining on Apache Kafka" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DRIFTLINE_DATA_DIR=/data \
    DRIFTLINE_LOG_FORMAT=json
COPY --from=build /src/requirements.txt /usr/local/share/driftline/requirements.txt
RUN --mount=type=bind,from=build,source=/deps,target=/deps \
    python -m pip install --no-index --find-links=/deps -r /usr/local/share/driftline/requirements.txt \
 && groupadd --system --gid 10001 driftline \
 && useradd --system --uid 10001 --gid driftline --home-dir /data --no-create-home driftline \
 && mkdir -p /data/artifacts \
 && chown -R driftline:driftline /data
COPY --from=build /wheels/ /usr/local/share/driftline/wheels/
RUN python -m pip install --no-index --no-deps /usr/local/share/driftline/wheels/*.whl \
 && driftline --help > /dev/null
USER driftline
WORKDIR /data
# Ports the services listen on (each only in its own container): registry 8300, serving 8400,
# metrics of validator 9101, learner 9102, trainer 9103, evaluator 9105. HTTP servers bind
# 127.0.0.1 unless told otherwise: set DRIFTLINE_<SERVICE>_HOST / _METRICS_HOST to 0.0.0.0.
EXPOSE 8300 8400 9101 9102 9103 9105
# No HEALTHCHECK here: the image runs several services, each with its own endpoint; every
# service in docker-compose.yml has its own (python is on the PATH for a one-line probe).
ENTRYPOINT ["driftline"]
CMD ["--help"]
