# Nexus image: one image, several commands (web, worker, migrate).
#
#   docker build -t nexus .
#   docker run nexus                                        # gunicorn on :5000
#   docker run -e NEXUS_SERVER=granian nexus                # granian on :5000
#   docker run nexus flask --app nexus worker               # RQ worker
#   docker run nexus flask --app nexus db upgrade           # migrations
#
# It runs with a read-only root filesystem (`docker run --read-only --tmpfs
# /tmp`, Kubernetes' readOnlyRootFilesystem): nothing is written at run time
# but under /tmp.

# --- build: resolve the locked, hashed dependencies into a venv ------------
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
# Only the hashed lock, and nothing it does not name: every file is checked.
# Then the installers go: the runtime image installs nothing.
RUN /opt/venv/bin/pip install --require-hashes --no-deps -r /tmp/requirements.txt \
    && /opt/venv/bin/pip uninstall --yes --quiet pip setuptools
COPY src/nexus /app/src/nexus
# Compiled once here: a read-only container cannot write its own .pyc files.
RUN /opt/venv/bin/python -m compileall -q /opt/venv/lib /app/src

# --- runtime: the venv and the source, no compilers, not root --------------
FROM python:3.11-slim-bookworm AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app/src \
    NEXUS_ENV=prod \
    FLASK_SKIP_DOTENV=1 \
    GUNICORN_CONTROL_SOCKET=/tmp/gunicorn.ctl
RUN groupadd --system --gid 10001 nexus \
    && useradd --system --uid 10001 --gid nexus --no-create-home --shell /usr/sbin/nologin nexus
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app/src /app/src
WORKDIR /app
COPY gunicorn.conf.py /app/gunicorn.conf.py
USER 10001:10001
EXPOSE 5000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000/livez', timeout=2)"]
# gunicorn, or granian with NEXUS_SERVER=granian (nexus.serve).
CMD ["python", "-m", "nexus.serve"]
