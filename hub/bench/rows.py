"""Write N birth-registration rows as CSV (with a header) for measuring `hub import`.

``python -m hub.bench.rows FILE N``: 5,000 distinct simulated registrations repeated with
fresh event ids, so a million rows take seconds to write.
"""

from __future__ import annotations

import argparse
import csv
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

from hub.domain.topics import SourceTopic
from hub.sim.traffic import Traffic
from hub.wire.codec import Codec


def write_rows(path: Path, rows: int, distinct: int = 5000) -> None:
    traffic = Traffic(Codec(), seed=7, provinces=5, population=2000, now=datetime.now(UTC))
    base = [json.loads(traffic.event(SourceTopic.BIRTH).model_dump_json())
            for _ in range(min(rows, distinct))]  # fmt: skip
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(base[0]))
        writer.writeheader()
        for i in range(rows):
            record = dict(base[i % len(base)], event_id=str(uuid.uuid4()))
            writer.writerow({k: "" if v is None else v for k, v in record.items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("file", type=Path)
    parser.add_argument("rows", type=int)
    args = parser.parse_args()
    write_rows(args.file, args.rows)


if __name__ == "__main__":
    main()
