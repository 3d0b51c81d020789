# One image for the API and the workers; the command picks the role. It installs exactly
# uv.lock, as `make install` does, without the dev tools.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    UV_NO_CACHE=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/conveyor \
    PATH=/opt/conveyor/bin:$PATH

WORKDIR /app
COPY requirements-uv.txt ./
RUN pip install --require-hashes -r requirements-uv.txt
# Dependencies first, in a layer of their own: a change to src/ does not reinstall them.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-install-project --python /usr/local/bin/python
COPY src ./src
RUN uv sync --locked --no-editable --python /usr/local/bin/python \
    && useradd --create-home conveyor && mkdir -p /data/files && chown -R conveyor /data
USER conveyor
ENV FILES_BASE_DIR=/data/files

EXPOSE 3000
CMD ["conveyor", "api"]
