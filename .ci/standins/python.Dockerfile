# CI-only stand-in for python:3.11-slim-bookworm: Debian 12's own Python
# (3.11.2, the oldest Nexus supports) as `python`, with venv and pip, and the
# CI machine's CA bundle so pip gets through its HTTPS proxy.
FROM nexus-ci/debian:bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv python-is-python3 ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    LANG=C.UTF-8
CMD ["python3"]
