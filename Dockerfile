# The hub image: `hub` is the entry point (`docker run lienthong-hub worker`).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY hub ./hub
COPY connectors ./connectors
COPY schemas ./schemas
# Editable: the codec reads schemas/ beside the package.
RUN pip install --no-cache-dir -e . \
    && useradd --create-home --uid 10001 hub \
    && mkdir -p /var/lib/hub && chown hub /var/lib/hub
USER hub
ENV HUB_HOME=/var/lib/hub
ENTRYPOINT ["hub"]
CMD ["--help"]
