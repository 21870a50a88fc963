"""The status state machine through conditional writes (moto's DynamoDB)."""

import threading

from audiomixer.store.keys import new_id
from audiomixer.store.models import Mix, Project
from audiomixer.store.status import raise_progress, transition, update_fields


def _project(**fields) -> Project:
    project = Project("acme", new_id(), name="song", **fields)
    project.save()
    return project


def test_forward_transitions_apply_and_backward_ones_do_not(aws):
    project = _project()
    assert transition(project, "separating", stage="separate")
    assert transition(project, "analysing")
    # A duplicate or late `separating` message cannot move the project back.
    assert not transition(project, "separating")
    assert transition(project, "ready")
    assert not transition(project, "failed", failure_reason="late failure")
    stored = Project.get("acme", project.project_id)
    assert stored.status == "ready" and stored.failure_reason is None


def test_a_stale_copy_rereads_and_decides_again(aws):
    project = _project()
    stale = Project.get("acme", project.project_id)
    assert transition(project, "separating")
    assert transition(project, "analysing")
    # The stale copy still thinks it is queued; the conditional write refuses and it re-reads.
    assert not transition(stale, "separating")
    assert stale.status == "analysing"
    assert transition(stale, "failed", failure_reason="analysis crashed")
    assert Project.get("acme", project.project_id).failure_reason == "analysis crashed"


def test_a_deleted_row_is_a_no_op(aws):
    project = _project()
    Project.get("acme", project.project_id).delete()
    assert not transition(project, "separating")
    assert not update_fields(project, only_in={"queued"}, progress=5)


def test_progress_only_rises_and_only_in_its_status(aws):
    project = _project()
    transition(project, "separating")
    assert raise_progress(project, 30, "separating")
    assert not raise_progress(project, 20, "separating")
    assert Project.get("acme", project.project_id).progress == 30
    transition(project, "analysing")
    assert not raise_progress(project, 80, "separating")


def test_concurrent_writers_lose_nothing(aws):
    project = _project()
    transition(project, "separating")
    copies = [Project.get("acme", project.project_id) for _ in range(2)]
    barrier = threading.Barrier(2)

    def progress() -> None:
        barrier.wait()
        for p in range(1, 40):
            raise_progress(copies[0], p, "separating")

    def details() -> None:
        barrier.wait()
        for d in range(1, 40):
            update_fields(copies[1], only_in={"separating"}, duration_s=float(d))

    threads = [threading.Thread(target=progress), threading.Thread(target=details)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stored = Project.get("acme", project.project_id)
    assert stored.progress == 39 and stored.duration_s == 39.0


def test_mix_machine(aws):
    mix = Mix("acme", new_id(), project_id=new_id())
    mix.save()
    assert not transition(mix, "queued")  # nothing leads back to queued
    assert transition(mix, "rendering")
    assert transition(mix, "completed", output_key="k")
    assert not transition(mix, "rendering")
