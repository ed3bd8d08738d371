"""Running the delivery connector as a process: settings in, signals and /metrics around it."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl

from prometheus_client import start_http_server

from connectors.delivery.webhook import DeliveryWorker, Endpoints, EndpointsError, RetryPolicy
from hub.kafka.client import connection
from hub.settings import Settings
from hub.tls import client_context


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        attempts=settings.delivery_attempts,
        base_s=settings.delivery_backoff_s,
        cap_s=settings.delivery_backoff_max_s,
        timeout_s=settings.delivery_timeout_s,
    )


def delivery_tls(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context towards agencies: their CA, and the client certificate some require."""
    ca, cert, key = (settings.delivery_ca_file, settings.delivery_client_cert,
                     settings.delivery_client_key)  # fmt: skip
    if (cert is None) != (key is None):
        missing = "HUB_DELIVERY_CLIENT_KEY" if key is None else "HUB_DELIVERY_CLIENT_CERT"
        raise EndpointsError(f"{missing}: required with the other half of the client certificate")
    if ca is None and cert is None:
        return None
    try:
        return client_context(ca, cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise EndpointsError(
            f"HUB_DELIVERY_CA_FILE/HUB_DELIVERY_CLIENT_CERT/HUB_DELIVERY_CLIENT_KEY: {exc}"
        ) from exc


async def run_delivery(settings: Settings, group: str) -> None:
    """Deliver until SIGINT/SIGTERM; the batch in hand finishes before the process exits."""
    endpoints = Endpoints.load(settings.resolved_delivery_endpoints)
    worker = DeliveryWorker(connection(settings), group, endpoints, retry_policy(settings),
                            f"{socket.gethostname()}:{os.getpid()}",
                            tls=delivery_tls(settings))  # fmt: skip
    if settings.delivery_metrics_port:
        start_http_server(settings.delivery_metrics_port, addr=settings.metrics_bind,
                          registry=worker.metrics.registry)  # fmt: skip
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await worker.start()
    try:
        await worker.run(stop)
    finally:
        await worker.stop()
