"""Least privilege, as data: what each role may read and write among the hub's topics, checked
against the issue's words (not against the code's own lists), and docs/SECURITY.md's table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hub.domain.topics import POPULATION_TOPIC, AgencyTopic, topic_plan
from hub.kafka.access import AccessError, Acl, parse_role, role_acls, roles_markdown

REPO = Path(__file__).resolve().parents[2]
TOPICS = [spec.name for spec in topic_plan(4)]
TASKS = {t.value for t in AgencyTopic if t is not AgencyTopic.ACK}


def allowed(acls: list[Acl], operation: str, topic: str) -> bool:
    """Kafka's matching: a literal name (or ``*``) equals, a prefix starts the name."""
    return any(
        a.resource == "TOPIC" and a.operation == operation
        and ((a.pattern == "LITERAL" and a.name in (topic, "*"))
             or (a.pattern == "PREFIXED" and topic.startswith(a.name)))
        for a in acls
    )  # fmt: skip


def topics(role: str, operation: str, group: str = "") -> set[str]:
    acls = role_acls(role, group)
    return {t for t in TOPICS if allowed(acls, operation, t)}


def test_gateway_and_importer_write_sources_and_nothing_else() -> None:
    for role in ("gateway", "importer"):
        assert topics(role, "WRITE") == {t for t in TOPICS if t.startswith("src.")}
        assert topics(role, "READ") == set()
        assert not any(a.resource == "GROUP" for a in role_acls(role))


def test_an_agency_reads_its_tasks_and_writes_its_acknowledgements_only() -> None:
    assert topics("agency:POLICE", "READ") == {"agency.police.residence.v1"}
    assert topics("agency:POLICE", "WRITE") == {"agency.ack.police.v1"}
    assert topics("agency:social_insurance", "READ") == {
        "agency.social_insurance.health_card.v1", "agency.social_insurance.benefits.v1",
    }  # fmt: skip
    assert topics("agency:SOCIAL_INSURANCE", "WRITE") == {"agency.ack.social_insurance.v1"}


def test_the_worker_reads_inputs_and_writes_outputs() -> None:
    reads = topics("worker", "READ", "lienthong-hub")
    writes = topics("worker", "WRITE", "lienthong-hub")
    assert {t for t in TOPICS if t.startswith(("src.", "ref.", "agency.ack."))} <= reads
    assert not any(t.startswith(("hub.", "dlq.")) for t in reads), "it never reads its output"
    assert writes == {t for t in TOPICS if t.startswith(("hub.", "dlq."))} | TASKS | {
        POPULATION_TOPIC
    }
    assert not any(t.startswith(("src.", "agency.ack.")) for t in writes)
    groups = {a.name for a in role_acls("worker", "lienthong-hub") if a.resource == "GROUP"}
    assert groups == {"lienthong-hub"}


def test_delivery_central_and_operator() -> None:
    assert topics("delivery", "READ", "d") == TASKS
    assert topics("delivery", "WRITE", "d") == {
        t for t in TOPICS if t.startswith(("agency.ack.", "dlq.agency."))
    }
    assert topics("central", "READ") == {t for t in TOPICS if t.startswith("hub.")}
    assert topics("central", "WRITE") == set()
    assert topics("operator", "READ") == {t for t in TOPICS if t.startswith("dlq.")}
    assert topics("operator", "DESCRIBE") == set(TOPICS)
    assert topics("operator", "WRITE") == set()


@pytest.mark.parametrize("role", ["root", "agency:NOBODY", "agency:SOCIAL_AFFAIRS", ""])
def test_unknown_or_retired_roles_are_refused(role: str) -> None:
    with pytest.raises(AccessError):
        parse_role(role)


def test_the_worker_role_needs_its_group() -> None:
    with pytest.raises(AccessError, match="consumer group"):
        role_acls("worker")


def test_the_security_doc_shows_the_acls_as_applied() -> None:
    doc = (REPO / "docs" / "SECURITY.md").read_text()
    assert roles_markdown() in doc, "regenerate the table with `hub kafka users roles`"
    done = subprocess.run([sys.executable, "-m", "hub", "kafka", "users", "roles"], cwd=REPO,
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert done.stdout == roles_markdown()
