"""A submit answered with neither a job nor a refusal (a 3xx, a 200 saying ``success: false``) may have created
a job: the row is ambiguous, never failed, and its POST is never sent again (``errors.created_nothing``)."""

from __future__ import annotations

import pytest

from tests.batch.conftest import TaskInstance, jobs_per_row, run_batch, submits

ANSWERS = {
    "303": {"kind": "http", "status": 303, "body": "see other"},
    "200-success-false": {"kind": "malformed", "status": 200,
                          "body": '{"success": false, "error": {"code": "internal", "message": "try later"}}'},
}


@pytest.mark.parametrize("answer", sorted(ANSWERS))
def test_a_submit_answer_that_is_not_a_refusal_leaves_the_row_ambiguous(emu, table, answer):
    table.fill(4)
    # The vendor creates (and charges) the third row's job, then answers the POST with this.
    emu.admin.add_fault(endpoint="submit", method="POST", skip=2, times=1, process=True, **ANSWERS[answer])

    summary = run_batch(max_in_flight=1)

    rows = table.rows()
    [odd] = [k for k, r in rows.items() if r["video_status"] != "succeeded"]
    assert rows[odd]["video_status"] == "ambiguous"  # not "failed": a job may exist, and here it does
    assert rows[odd]["request_id"] is None
    assert "may have reached Seedance" in rows[odd]["video_error"]
    assert (summary["ambiguous"], summary["failed"], summary["succeeded"]) == (1, 0, 3)
    assert submits(emu) == 4  # never re-sent in the run
    assert jobs_per_row(emu)[odd] == 1

    again = run_batch({"ti": TaskInstance(run_id="manual__2")})  # nor by a re-run
    assert again["submitted"] == 0
    assert submits(emu) == 4
