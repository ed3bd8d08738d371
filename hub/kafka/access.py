"""Principals and least-privilege ACLs of a secured cluster (docs/SECURITY.md has the table).

:func:`role_acls` decides, as data, exactly what each role may do; :func:`add_user`,
:func:`remove_user` and :func:`list_access` apply and read them through Kafka's own Admin API
(``deploy/kafka/HubAccess.java``, run on the broker's classpath: aiokafka has no SCRAM
administration).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from hub.domain.records import Agency
from hub.domain.text import PRINCIPAL_NAME
from hub.domain.topics import (
    POPULATION_TOPIC,
    TASK_TOPICS,
    AckTopic,
    AgencyTopic,
    ack_topic_of,
)
from hub.domain.workflows import topics_of
from hub.kafka.client import KafkaConnection, write_java_client_properties

ACCESS_TOOL = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "HubAccess.java"


class AccessError(Exception):
    """A user or ACL change was refused or could not be made; the message says why."""


# Agencies that act today (each has its acknowledgement topic); retired ones get no principal.
ACTING_AGENCIES = [a for a in Agency if a.name in AckTopic.__members__]


class Role(StrEnum):
    GATEWAY = "gateway"
    IMPORTER = "importer"
    WORKER = "worker"
    DELIVERY = "delivery"
    CENTRAL = "central"
    OPERATOR = "operator"


ROLE_HELP = (
    "gateway, importer: write src.*; worker: read src.*/ref.*/agency topics, write hub.*, "
    "agency tasks, dlq.*, ref.population.v1; delivery: read agency tasks, write agency.ack.* and "
    "dlq.agency.*; agency:NAME (e.g. agency:POLICE): read its tasks, write its acknowledgement "
    "topic; central: read hub.*; operator: describe everything, read dlq.*"
)


@dataclass(frozen=True, order=True)
class Acl:
    """One ALLOW entry: ``operation`` on a ``resource`` whose name is (or starts with) ``name``."""

    resource: str  # TOPIC, GROUP, CLUSTER
    pattern: str  # LITERAL, PREFIXED
    name: str
    operation: str  # READ, WRITE, CREATE, DESCRIBE, DESCRIBE_CONFIGS, ...

    def line(self) -> str:
        return f"{self.resource} {self.pattern} {self.name} {self.operation}"


def _topics(pattern: str, names: Sequence[str], *operations: str) -> list[Acl]:
    return [Acl("TOPIC", pattern, n, op) for n in names for op in operations]


def _group(pattern: str, name: str) -> list[Acl]:
    return [Acl("GROUP", pattern, name, op) for op in ("READ", "DESCRIBE")]


def parse_role(text: str) -> tuple[Role | None, Agency | None]:
    """``worker`` → (Role.WORKER, None); ``agency:POLICE`` → (None, Agency.POLICE)."""
    kind, _, rest = text.partition(":")
    if kind.lower() == "agency":
        agency = next((a for a in ACTING_AGENCIES if a.value == rest.upper()), None)
        if agency is None:
            known = ", ".join(a.value for a in ACTING_AGENCIES)
            raise AccessError(f"unknown agency {rest!r} in role {text!r}; one of {known}")
        return None, agency
    try:
        return Role(text.lower()), None
    except ValueError:
        raise AccessError(f"unknown role {text!r}: {ROLE_HELP}") from None


def default_group(role: str, app_id: str) -> str:
    """The consumer group (prefix) a role's clients use unless told otherwise."""
    kind, agency = parse_role(role)
    if agency is not None:
        return f"agency-{agency.value.lower()}"
    return {Role.WORKER: app_id, Role.DELIVERY: f"{app_id}-delivery",
            Role.CENTRAL: "central"}.get(kind, "")  # type: ignore[arg-type]  # fmt: skip


def role_acls(role: str, group: str = "") -> list[Acl]:
    """Exactly the ACLs of ``role`` (sorted, no duplicates); ``group`` names its consumer group.

    The worker's group is literal and faust's internal topics (``<group>-…``: the assignor's
    leader topic, table changelogs) are its own; a delivery group is a prefix, one group per
    agency (``<group>-police``); an agency's and central's groups are prefixes too.
    """
    kind, agency = parse_role(role)
    acls: list[Acl] = []
    if agency is not None:
        acls += _topics("LITERAL", topics_of(agency), "READ")
        acls += _topics("LITERAL", [ack_topic_of(agency.value)], "WRITE")
        acls += _group("PREFIXED", group or default_group(role, ""))
    elif kind in (Role.GATEWAY, Role.IMPORTER):
        acls += _topics("PREFIXED", ["src."], "WRITE")
    elif kind is Role.WORKER:
        if not group:
            raise AccessError("the worker role needs its consumer group (the faust app id)")
        acls += _topics("PREFIXED", ["src.", "ref.", "agency.ack."], "READ")
        acls += _topics("LITERAL", [*TASK_TOPICS, AgencyTopic.ACK.value], "READ")
        acls += _topics("PREFIXED", ["hub.", "dlq."], "WRITE")
        acls += _topics("LITERAL", [*TASK_TOPICS, POPULATION_TOPIC], "WRITE")
        acls += _topics("PREFIXED", [f"{group}-"], "CREATE", "READ", "WRITE", "DESCRIBE",
                        "DESCRIBE_CONFIGS")  # fmt: skip
        acls += [Acl("GROUP", "LITERAL", group, op) for op in ("READ", "DESCRIBE")]
    elif kind is Role.DELIVERY:
        acls += _topics("LITERAL", TASK_TOPICS, "READ")
        acls += _topics("PREFIXED", ["agency.ack.", "dlq.agency."], "WRITE")
        acls += _group("PREFIXED", group or "delivery")
    elif kind is Role.CENTRAL:
        acls += _topics("PREFIXED", ["hub."], "READ")
        acls += _group("PREFIXED", group or "central")
    elif kind is Role.OPERATOR:
        acls += _topics("LITERAL", ["*"], "DESCRIBE", "DESCRIBE_CONFIGS")
        acls += _topics("PREFIXED", ["dlq."], "READ")
        acls.append(Acl("GROUP", "LITERAL", "*", "DESCRIBE"))
        acls.append(Acl("CLUSTER", "LITERAL", "kafka-cluster", "DESCRIBE"))
    return sorted(set(acls))


# ---- applying them ---------------------------------------------------------------------------
@contextmanager
def _client_properties(admin: KafkaConnection) -> Iterator[Path]:
    """The admin connection as a 0600 properties file that lives for one call."""
    fd, name = tempfile.mkstemp(prefix="hub-access-", suffix=".properties")
    os.close(fd)
    try:
        yield write_java_client_properties(admin, Path(name))
    finally:
        os.unlink(name)


def _run(admin: KafkaConnection, classpath: Path, args: list[str], stdin: str = "") -> str:
    java = shutil.which("java")
    if java is None:
        raise AccessError("`java` not found on PATH: install a JDK 17+")
    with _client_properties(admin) as props:
        done = subprocess.run(
            [java, "-Xmx256m", "-cp", f"{classpath}/*", str(ACCESS_TOOL), str(props), *args],
            input=stdin, capture_output=True, text=True, check=False, timeout=180,
        )  # fmt: skip
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.splitlines() if ln.startswith("kafka: ")]
        raise AccessError(lines[-1] if lines else done.stderr.strip()[-400:])
    return done.stdout


def check_name(name: str) -> str:
    if not PRINCIPAL_NAME.fullmatch(name):
        raise AccessError(f"user name {name!r}: letters, digits, '.', '_', '-' (at most 64)")
    if name == "admin":
        raise AccessError("`admin` is the bootstrap super user; choose another name")
    return name


def new_password() -> str:
    return secrets.token_hex(24)


def add_user(admin: KafkaConnection, classpath: Path, name: str, password: str, role: str,
             group: str = "", mechanism: str = "SCRAM-SHA-512") -> list[Acl]:  # fmt: skip
    """Create or update ``name``'s SCRAM credential; its ACLs become exactly ``role``'s."""
    acls = role_acls(role, group)
    stdin = password + "\n" + "".join(acl.line() + "\n" for acl in acls)
    _run(admin, classpath, ["upsert", check_name(name), mechanism], stdin)
    return acls


def remove_user(admin: KafkaConnection, classpath: Path, name: str) -> None:
    _run(admin, classpath, ["remove", check_name(name)])


@dataclass(frozen=True)
class Access:
    users: dict[str, list[str]]  # name → mechanisms
    acls: dict[str, list[tuple[Acl, str]]]  # principal → (acl, permission)


def list_access(admin: KafkaConnection, classpath: Path) -> Access:
    users: dict[str, list[str]] = {}
    acls: dict[str, list[tuple[Acl, str]]] = {}
    for line in _run(admin, classpath, ["list"]).splitlines():
        parts = line.split(" ")
        if parts[0] == "user" and len(parts) == 4:
            users.setdefault(parts[1], []).append(parts[2])
        elif parts[0] == "acl" and len(parts) == 7:
            principal = parts[1].removeprefix("User:")
            acls.setdefault(principal, []).append((Acl(*parts[2:6]), parts[6]))
    return Access(users, {p: sorted(a) for p, a in acls.items()})


def roles_markdown(app_id: str = "lienthong-hub") -> str:
    """Every role's ACLs as a Markdown table (docs/SECURITY.md is generated from it)."""
    roles = [r.value for r in Role] + [f"agency:{a.value}" for a in ACTING_AGENCIES]
    lines = ["| role | resource | pattern | name | operations |", "|---|---|---|---|---|"]
    for role in roles:
        grouped: dict[tuple[str, str, str], list[str]] = {}
        for acl in role_acls(role, default_group(role, app_id)):
            grouped.setdefault((acl.resource, acl.pattern, acl.name), []).append(acl.operation)
        for i, ((resource, pattern, name), ops) in enumerate(sorted(grouped.items())):
            first = f"`{role}`" if i == 0 else ""
            lines.append(
                f"| {first} | {resource} | {pattern} | `{name}` | {', '.join(sorted(ops))} |"
            )
    return "\n".join(lines) + "\n"
