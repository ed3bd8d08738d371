"""`hub kafka start`'s storage format against the real Kafka storage tool."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hub.kafka import local
from hub.settings import Settings


@pytest.mark.parametrize("cluster_id", ["-AbCdEfGhIjKlMnOpQrStU", "AbCdEfGhIjKlMnOpQrSt-_"])
def test_storage_formats_for_any_cluster_id_even_one_starting_with_a_dash(
    kafka_broker: Settings, tmp_path: Path, cluster_id: str
) -> None:
    # The real CI run that failed drew such an id ("argument --cluster-id/-t: expected one
    # argument"); the broker fixture resolved the jars.
    settings = Settings(home=tmp_path)
    settings.kafka_dir.mkdir(parents=True)
    props = settings.kafka_dir / "server.properties"
    props.write_text(local.server_properties(settings))
    java = shutil.which("java")
    assert java is not None
    local.format_storage(java, props, cluster_id, admin_password=None)
    meta = (settings.kafka_dir / "data" / "meta.properties").read_text()
    assert f"cluster.id={cluster_id}\n" in meta
