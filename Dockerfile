# Nox UI in one container: non-root, all state on the /data volume, health-checked on /healthz.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 nox \
    && useradd --system --uid 10001 --gid nox --home-dir /app --no-create-home --shell /usr/sbin/nologin nox

WORKDIR /app
COPY . /app

# The same install step as `make run` (Makefile, $(VENV)/.installed), so a working `make run` vouches for it.
RUN python -m pip install --no-cache-dir -e .

# Byte-code compiled once here: the panel runs as `nox`, which cannot write /app, so without this every
# start would compile its ~33,000 lines from source again.
RUN python -m compileall -q /app/nox_ui /app/pages /app/components

RUN mkdir -p /data && chown nox:nox /data && chmod 0700 /data

ENV NOX_DATA_DIR=/data NOX_HOST=0.0.0.0 NOX_PORT=8080

VOLUME /data
EXPOSE 8080

# slim has no curl; urlopen raises (exit 1) on a refused connection or any non-2xx answer.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('NOX_PORT', '8080') + '/healthz', timeout=4)"]

USER nox
CMD ["nox-ui", "serve"]
