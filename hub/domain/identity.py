"""Identity verification against the population register (pure: the register is passed in)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import NamedTuple

from hub.domain.enums import Sex
from hub.domain.events import (
    BirthRegistration,
    DeathRegistration,
    HealthEvent,
    MarriageRegistration,
    SourceEvent,
)
from hub.domain.records import PopulationRecord
from hub.domain.text import name_key

Lookup = Callable[[str], PopulationRecord | None]


class Claim(NamedTuple):
    """What an event says about a person, to compare with the register (a tuple: made for
    every event, by the pipeline and by the batch's register query)."""

    personal_id: str
    full_name: str | None
    sex: Sex | None
    date_of_birth: date | None


def claims(event: SourceEvent) -> list[Claim]:
    """The identities an event asserts. Births assert none: the child is new to the register."""
    if isinstance(event, DeathRegistration):
        return [Claim(event.deceased_id, event.deceased_full_name, event.deceased_sex,
                      event.deceased_date_of_birth)]  # fmt: skip
    if isinstance(event, MarriageRegistration):
        return [Claim(event.spouse_a_id, event.spouse_a_full_name, None, None)]
    if isinstance(event, HealthEvent):
        return [Claim(event.patient_id, event.patient_full_name, event.patient_sex,
                      event.patient_date_of_birth)]  # fmt: skip
    return []


def subject_claimed(event: SourceEvent) -> str | None:
    """The personal ID ``verify`` looks up for ``event`` (None: it asserts no identity)."""
    found = claims(event)
    return found[0].personal_id if found else None


def verify(event: SourceEvent, lookup: Lookup) -> list[str]:
    """Issue codes: subject_unknown, name_mismatch, sex_mismatch, dob_mismatch, subject_deceased.

    The subject (the event's key) is looked up; other people named in the event live in other
    partitions of the register and are checked by the personal-ID rules only.
    """
    found = claims(event)
    return check_claim(found[0], lookup(found[0].personal_id)) if found else []


def check_claim(claim: Claim, person: PopulationRecord | None) -> list[str]:
    """:func:`verify`'s issue codes for one claim against its register entry (or None)."""
    if person is None:
        return ["subject_unknown"]
    issues: list[str] = []
    if claim.full_name is not None and name_key(claim.full_name) != name_key(person.full_name):
        issues.append("name_mismatch")
    if claim.sex is not None and claim.sex is not person.sex:
        issues.append("sex_mismatch")
    if claim.date_of_birth is not None and claim.date_of_birth != person.date_of_birth:
        issues.append("dob_mismatch")
    if person.deceased:
        issues.append("subject_deceased")
    return issues


def register_update(event: SourceEvent, lookup: Lookup) -> PopulationRecord | None:
    """The register change an event makes: a birth adds the child, a death marks the deceased."""
    if isinstance(event, BirthRegistration):
        return PopulationRecord(
            personal_id=event.child_id,
            full_name=event.child_full_name,
            sex=event.child_sex,
            date_of_birth=event.child_date_of_birth,
            province_code=event.province_code,
            commune_code=event.commune_code,
            updated_at=event.occurred_at,
        )
    if isinstance(event, DeathRegistration):
        person = lookup(event.deceased_id)
        if person is None or person.deceased:
            return None
        return person.model_copy(
            update={
                "deceased": True,
                "date_of_death": event.date_of_death,
                "updated_at": event.occurred_at,
            }
        )
    return None
