# One image for the API and the workers; the command picks the role.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install . && useradd --create-home conveyor && mkdir -p /data/files \
    && chown -R conveyor /data
USER conveyor
ENV FILES_BASE_DIR=/data/files

EXPOSE 3000
CMD ["conveyor", "api"]
