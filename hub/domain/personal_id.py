"""The 12-digit personal ID (số định danh cá nhân / CCCD), Circular 59/2021/TT-BCA.

Layout: 3 digits place-of-birth province code, 1 digit century+sex, 2 digits year of birth,
6 random digits. Century+sex: 0/1 = male/female born 1900-1999, 2/3 = 2000s, 4/5 = 2100s,
6/7 = 2200s, 8/9 = 2300s.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from datetime import date

from hub.domain.enums import Sex

_CENTURY_OF_PAIR = {0: 1900, 1: 2000, 2: 2100, 3: 2200, 4: 2300}


def personal_id_problems(
    pid: str, birth_codes: AbstractSet[str], sex: Sex | None = None, dob: date | None = None
) -> list[str]:
    """What is wrong with ``pid`` (empty when nothing), checked against sex and date of birth."""
    if len(pid) != 12 or not pid.isascii() or not pid.isdigit():
        return ["personal ID must be exactly 12 digits"]
    problems = []
    if pid[:3] not in birth_codes:
        problems.append(f"place-of-birth code {pid[:3]} does not exist")
    gender_digit = int(pid[3])
    if sex is not None:
        expected = Sex.MALE if gender_digit % 2 == 0 else Sex.FEMALE
        if sex is not expected:
            problems.append(f"century/sex digit {gender_digit} says {expected.value.lower()}")
    if dob is not None:
        century = _CENTURY_OF_PAIR[gender_digit // 2]
        if not century <= dob.year < century + 100:
            problems.append(
                f"century/sex digit {gender_digit} disagrees with birth year {dob.year}"
            )
        if pid[4:6] != f"{dob.year % 100:02d}":
            problems.append(f"birth-year digits {pid[4:6]} disagree with birth year {dob.year}")
    return problems


def make_personal_id(birth_code: str, sex: Sex, dob: date, serial: int) -> str:
    """Compose a personal ID (for synthetic data: simulator and tests)."""
    pair = (dob.year - 1900) // 100
    digit = pair * 2 + (0 if sex is Sex.MALE else 1)
    return f"{birth_code}{digit}{dob.year % 100:02d}{serial % 1_000_000:06d}"
