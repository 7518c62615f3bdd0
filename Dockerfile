# The worker in a container: installs the exact, hash-checked dependencies of
# requirements.lock, then the package (--no-deps), compiles the Numba kernels
# into the image at build time, runs `optimizer-worker serve` as a non-root user.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    NUMBA_CACHE_DIR=/opt/numba-cache

WORKDIR /opt/optimizer-worker
# Dependencies first, in their own layer: a source change does not reinstall them.
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY worker ./worker
COPY protocol ./protocol
# Compile every kernel into the image: `optimizer-worker warm` runs each once,
# so a container's first request loads them from the cache instead.
RUN pip install --no-cache-dir --no-deps . \
    && mkdir -p "$NUMBA_CACHE_DIR" \
    && optimizer-worker warm \
    && chmod -R a+rX "$NUMBA_CACHE_DIR"

RUN useradd --create-home --uid 10001 worker
USER worker

# The daemon on stdio (docker run -i ...); for a socket, mount a private
# directory and pass: serve --socket /run/optimizer/worker.sock
ENTRYPOINT ["optimizer-worker"]
CMD ["serve"]
