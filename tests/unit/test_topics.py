from hub.domain.topics import (
    POPULATION_TOPIC,
    SourceTopic,
    TopicSpec,
    dead_letter_topic,
    missing_topics,
    topic_plan,
)

DESIGN_SOURCE_TOPICS = {
    "src.procedure.dossier.v1", "src.civil.birth.v1", "src.civil.death.v1",
    "src.civil.marriage.v1", "src.health.encounter.v1", "src.health.referral.v1",
    "src.health.appointment.v1", "src.health.lab_result.v1",
}  # fmt: skip
DESIGN_UNIFIED_TOPICS = {"hub.procedure.v1", "hub.civil_status.v1", "hub.health.v1"}


def test_plan_holds_every_topic_of_the_design() -> None:
    names = {spec.name for spec in topic_plan(3)}
    assert DESIGN_SOURCE_TOPICS <= names
    assert DESIGN_UNIFIED_TOPICS <= names
    assert {f"dlq.{t}" for t in DESIGN_SOURCE_TOPICS} <= names
    assert POPULATION_TOPIC in names
    assert any(n.startswith("agency.") for n in names)


def test_plan_names_are_unique_and_use_the_partition_count() -> None:
    plan = topic_plan(7)
    assert len({s.name for s in plan}) == len(plan)
    assert {s.partitions for s in plan} == {7}


def test_only_the_population_register_is_compacted() -> None:
    compacted = [s.name for s in topic_plan(1) if s.config.get("cleanup.policy") == "compact"]
    assert compacted == [POPULATION_TOPIC]


def test_dead_letter_topic_name() -> None:
    assert dead_letter_topic(SourceTopic.BIRTH) == "dlq.src.civil.birth.v1"


def test_missing_topics_leaves_existing_ones_alone() -> None:
    plan = [TopicSpec("a", 1), TopicSpec("b", 1), TopicSpec("c", 1)]
    assert [s.name for s in missing_topics(plan, {"a", "c", "zzz"})] == ["b"]
    assert missing_topics(plan, {"a", "b", "c"}) == []


def test_a_worker_partitioned_unlike_its_topics_is_told_what_to_set() -> None:
    from hub.kafka.admin import partitions_problem

    assert partitions_problem({"src.civil.birth.v1": 12, "src.civil.death.v1": 12}, 12) is None
    assert partitions_problem({}, 12) is None, "no topics yet: nothing to compare"
    problem = partitions_problem({"src.civil.birth.v1": 4, "src.civil.death.v1": 12}, 12)
    assert problem is not None
    assert "HUB_PARTITIONS=4" in problem and "src.civil.birth.v1" in problem
    assert "OPERATIONS" in problem
