# The hub image: `hub` is the entry point (`docker run lienthong-hub worker`). Target `hub`
# (the default for every service); target `admin` adds a JDK and Kafka's jars for
# `hub kafka users` (users and ACLs through Kafka's Admin API), used by compose's `topics`.
FROM apache/kafka:4.1.1 AS kafka

FROM python:3.11-slim AS hub
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

FROM hub AS admin
USER root
RUN apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jdk-headless \
    && rm -rf /var/lib/apt/lists/*
COPY --from=kafka /opt/kafka/libs /opt/kafka/libs
COPY deploy/kafka/HubAccess.java /app/deploy/kafka/HubAccess.java
ENV HUB_KAFKA_LIBS=/opt/kafka/libs
USER hub
