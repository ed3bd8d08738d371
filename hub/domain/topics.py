"""The topic plan: every topic the design names, its role and its configuration."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class SourceTopic(StrEnum):
    """Topics the agency systems publish to (keys: personal ID, else the dossier code)."""

    DOSSIER = "src.procedure.dossier.v1"
    BIRTH = "src.civil.birth.v1"
    DEATH = "src.civil.death.v1"
    MARRIAGE = "src.civil.marriage.v1"
    ENCOUNTER = "src.health.encounter.v1"
    REFERRAL = "src.health.referral.v1"
    APPOINTMENT = "src.health.appointment.v1"
    LAB_RESULT = "src.health.lab_result.v1"


class UnifiedTopic(StrEnum):
    """One envelope schema around each domain's payload."""

    PROCEDURE = "hub.procedure.v1"
    CIVIL_STATUS = "hub.civil_status.v1"
    HEALTH = "hub.health.v1"


class AgencyTopic(StrEnum):
    """Interconnection topics (Decree 63/2024): work the hub fans out to the agencies that act
    after the 2025 reorganisation (docs/WORKFLOWS.md), and their replies."""

    RESIDENCE = "agency.police.residence.v1"
    HEALTH_INSURANCE = "agency.social_insurance.health_card.v1"
    SOCIAL_INSURANCE_BENEFITS = "agency.social_insurance.benefits.v1"
    COMMUNE_SOCIAL_PROTECTION = "agency.commune.social_protection.v1"
    MERITORIOUS_BENEFITS = "agency.home_affairs.meritorious.v1"
    ACK = "agency.ack.v1"


# The topics the hub writes agency tasks to (every AgencyTopic but the shared answers topic).
TASK_TOPICS = tuple(t.value for t in AgencyTopic if t is not AgencyTopic.ACK)


class AckTopic(StrEnum):
    """One acknowledgement topic per agency (named by the agency): only that agency's principal
    (and delivery) may write it, so the topic proves who answered. ``agency.ack.v1`` above is the
    shared topic of before, still read during the migration (docs/OPERATIONS.md)."""

    POLICE = "agency.ack.police.v1"
    SOCIAL_INSURANCE = "agency.ack.social_insurance.v1"
    COMMUNE_PEOPLES_COMMITTEE = "agency.ack.commune_peoples_committee.v1"
    PROVINCIAL_HOME_AFFAIRS = "agency.ack.provincial_home_affairs.v1"


def ack_topic_of(agency: str) -> str:
    """The acknowledgement topic of ``agency`` (an Agency value)."""
    return AckTopic[agency].value


POPULATION_TOPIC = "ref.population.v1"
# Citizen-facing changes of interconnection cases (CaseNotification), for portals and VNeID.
NOTIFICATION_TOPIC = "hub.notification.v1"

UNIFIED_TOPIC_OF: dict[SourceTopic, UnifiedTopic] = {
    SourceTopic.DOSSIER: UnifiedTopic.PROCEDURE,
    SourceTopic.BIRTH: UnifiedTopic.CIVIL_STATUS,
    SourceTopic.DEATH: UnifiedTopic.CIVIL_STATUS,
    SourceTopic.MARRIAGE: UnifiedTopic.CIVIL_STATUS,
    SourceTopic.ENCOUNTER: UnifiedTopic.HEALTH,
    SourceTopic.REFERRAL: UnifiedTopic.HEALTH,
    SourceTopic.APPOINTMENT: UnifiedTopic.HEALTH,
    SourceTopic.LAB_RESULT: UnifiedTopic.HEALTH,
}


def dead_letter_topic(source: str) -> str:
    """``dlq.<source topic>``: where a message that cannot be processed goes, untouched."""
    return f"dlq.{source}"


@dataclass(frozen=True)
class TopicSpec:
    """One topic to create: name, partitions and topic-level configs."""

    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


# Reference data is a table, not a log: compaction keeps the latest record per personal ID.
_COMPACTED = {"cleanup.policy": "compact"}


def topic_plan(partitions: int) -> list[TopicSpec]:
    """Every topic the hub needs, in a stable order."""
    specs = [TopicSpec(t.value, partitions) for t in SourceTopic]
    specs += [TopicSpec(t.value, partitions) for t in UnifiedTopic]
    specs += [TopicSpec(dead_letter_topic(t.value), partitions) for t in SourceTopic]
    specs += [TopicSpec(t.value, partitions) for t in AgencyTopic]
    specs += [TopicSpec(dead_letter_topic(t.value), partitions) for t in AgencyTopic]
    specs += [TopicSpec(t.value, partitions) for t in AckTopic]
    specs += [TopicSpec(dead_letter_topic(t.value), partitions) for t in AckTopic]
    specs.append(TopicSpec(NOTIFICATION_TOPIC, partitions))
    specs.append(TopicSpec(POPULATION_TOPIC, partitions, dict(_COMPACTED)))
    return specs


def missing_topics(plan: list[TopicSpec], existing: set[str]) -> list[TopicSpec]:
    """The part of the plan not yet on the broker (creation is idempotent by name)."""
    return [spec for spec in plan if spec.name not in existing]
