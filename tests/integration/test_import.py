"""`hub import`: a CSV of digitised birth records, some bad, interrupted and resumed: every
valid row reaches the topic exactly once; every bad row is in the rejects file with why."""

from __future__ import annotations

import csv
import json
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.ingest.importer import BATCH, ImportFailed, import_file
from hub.domain.topics import SourceTopic
from hub.settings import Settings
from hub.sim.traffic import Traffic
from hub.wire.codec import Codec
from tests.integration.test_gateway import count_on_topic

pytestmark = pytest.mark.integration


def write_csv(path: Path, rows: int, bad_every: int) -> tuple[set[str], int]:
    traffic = Traffic(
        Codec(), seed=random.randrange(10**9), provinces=3, population=300, now=datetime.now(UTC)
    )
    good: set[str] = set()
    bad = 0
    with path.open("w", newline="", encoding="utf-8") as f:
        writer: csv.DictWriter[str] | None = None
        for i in range(rows):
            # A civil-status book has no interconnection or origin columns.
            record = json.loads(traffic.event(SourceTopic.BIRTH).model_dump_json(
                exclude={"interconnection", "origin"}))  # fmt: skip
            if i % bad_every == 0:
                record["child_id"] = "not-an-id"
                bad += 1
            else:
                good.add(record["event_id"])
            if writer is None:
                writer = csv.DictWriter(f, fieldnames=list(record))
                writer.writeheader()
            writer.writerow({k: "" if v is None else v for k, v in record.items()})
    return good, bad


async def test_an_interrupted_import_resumes_without_producing_a_row_twice(
    kafka_broker: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "births-1990.csv"
    good, bad = write_csv(path, 2 * BATCH + 500, bad_every=50)
    first = await import_file(path, "civil.birth", kafka_broker.kafka_bootstrap, max_batches=1)
    assert first.line == BATCH, "stopped after one batch, as if interrupted"
    final = await import_file(path, "civil.birth", kafka_broker.kafka_bootstrap)
    assert final.line == 2 * BATCH + 500
    assert (final.produced, final.rejected) == (len(good), bad)
    assert await count_on_topic(kafka_broker.kafka_bootstrap, good) == len(good)
    rejects = [json.loads(line) for line in (tmp_path / f"{path.name}.rejects.jsonl").open()]
    assert len(rejects) == bad
    assert all(r["errors"][0]["field"] for r in rejects)
    assert {e["reason"] for r in rejects for e in r["errors"]} == {"invalid_personal_id"}


async def test_unknown_source_and_wrong_file_type_are_clear_errors(
    kafka_broker: Settings, tmp_path: Path
) -> None:
    (tmp_path / "x.csv").write_text("a\n1\n")
    with pytest.raises(ImportFailed, match="unknown source"):
        await import_file(tmp_path / "x.csv", "civil.nope", kafka_broker.kafka_bootstrap)
    (tmp_path / "x.xlsx").write_text("")
    with pytest.raises(ImportFailed, match="csv"):
        await import_file(tmp_path / "x.xlsx", "civil.birth", kafka_broker.kafka_bootstrap)


async def test_hostile_names_are_rejected_and_records_carry_their_provenance(
    kafka_broker: Settings, tmp_path: Path
) -> None:
    """The importer's door of the one hygiene rule: control and format characters are rejects
    with their reason; what is produced says which file and line it came from."""
    import hashlib

    from tests.integration.test_gateway_hostile import headers_of

    path = tmp_path / "so-ho-tich-1985.csv"
    traffic = Traffic(Codec(), seed=random.randrange(10**9), provinces=2, population=100,
                      now=datetime.now(UTC))  # fmt: skip
    hostile = ["Nguyễn Văn\x00An", "\u200b\u200b", "Trần \u202eThị", "Lê\x1b[2J Hoa", "12345"]
    records = [json.loads(traffic.event(SourceTopic.BIRTH).model_dump_json(
        exclude={"interconnection", "origin"})) for _ in range(6)]  # fmt: skip
    for record, name in zip(records, hostile, strict=False):
        record["child_full_name"] = name
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in r.items()} for r in records)
    state = await import_file(path, "civil.birth", kafka_broker.kafka_bootstrap)
    assert (state.produced, state.rejected) == (1, 5)
    rejects_path = tmp_path / f"{path.name}.rejects.jsonl"
    rejects = [json.loads(line) for line in rejects_path.open()]
    assert [r["errors"][0]["reason"] for r in rejects] == [
        "control_character", "control_character", "control_character", "control_character",
        "invisible_name",
    ]  # fmt: skip
    assert rejects_path.stat().st_mode & 0o077 == 0, "rejects hold personal data: owner only"
    headers = await headers_of(kafka_broker.kafka_bootstrap, records[5]["event_id"])
    assert headers["hub-import-file"] == path.name.encode()
    assert headers["hub-import-sha256"] == hashlib.sha256(path.read_bytes()).hexdigest().encode()
    # The importer's record number (the rejects file and the checkpoint count the same way):
    # the 6th data row, after the CSV header.
    assert headers["hub-import-line"] == b"6"


async def test_the_import_command_reports_what_it_did_and_refuses_bad_arguments_up_front(
    kafka_broker: Settings, tmp_path: Path
) -> None:
    """`hub import` as an operator runs it: the summary names what was produced and rejected
    (and where the rejects are); a rerun of a finished file produces nothing again; a missing
    file or an unknown source is a usage error before anything is read or sent."""
    from tests.conftest import run_hub

    path = tmp_path / "births-1987.csv"
    good, bad = write_csv(path, 60, bad_every=20)
    env = {"HUB_KAFKA_BOOTSTRAP": kafka_broker.kafka_bootstrap}
    done = run_hub("import", str(path), "--source", "civil.birth", env=env)
    summary = f"{path.name}: {len(good)} rows produced, {bad} rejected "
    assert done.stdout.splitlines()[-1].startswith(summary), done.stdout
    again = run_hub("import", str(path), "--source", "civil.birth", env=env)
    assert again.stdout.splitlines()[-1].startswith(summary), "the checkpoint says it is done"
    assert await count_on_topic(kafka_broker.kafka_bootstrap, good) == len(good)
    missing = run_hub("import", str(tmp_path / "none.csv"), "--source", "civil.birth",
                      env=env, check=False)  # fmt: skip
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    unknown = run_hub("import", str(path), "--source", "civil.nope", env=env, check=False)
    assert unknown.returncode == 2 and "civil.birth" in unknown.stderr
