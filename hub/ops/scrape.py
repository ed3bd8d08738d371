"""Read a worker's /metrics exposition into numbers (for the demo, `hub bench` and tests)."""

from __future__ import annotations

import math
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

Labels = tuple[tuple[str, str], ...]


@dataclass
class Scrape:
    samples: dict[str, dict[Labels, float]] = field(default_factory=lambda: defaultdict(dict))

    def total(self, name: str, **match: str) -> float:
        """Sum of ``name`` over the series whose labels include ``match``."""
        return sum(
            v for labels, v in self.samples.get(name, {}).items()
            if all(dict(labels).get(k) == want for k, want in match.items())
        )  # fmt: skip

    def by(self, name: str, label: str) -> dict[str, float]:
        out: dict[str, float] = defaultdict(float)
        for labels, v in self.samples.get(name, {}).items():
            out[dict(labels).get(label, "")] += v
        return dict(out)

    def quantile(self, histogram: str, q: float) -> float | None:
        """The ``q`` quantile of a histogram, interpolated within buckets like PromQL does."""
        buckets = sorted(
            (float(dict(labels)["le"]), v)
            for labels, v in self.samples.get(f"{histogram}_bucket", {}).items()
        )
        if not buckets or buckets[-1][1] == 0:
            return None
        rank = q * buckets[-1][1]
        lower, below = 0.0, 0.0
        for upper, count in buckets:
            if count >= rank:
                if math.isinf(upper):
                    return lower
                inside = count - below
                return lower + (upper - lower) * ((rank - below) / inside if inside else 0)
            lower, below = upper, count
        return None


def parse(text: str) -> Scrape:
    scrape = Scrape()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            scrape.samples[s.name][tuple(sorted(s.labels.items()))] = s.value
    return scrape


def fetch(url: str, timeout: float = 3.0) -> Scrape | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return parse(r.read().decode())
    except OSError:
        return None
