"""Contract of every endpoint and error, over real HTTP on 127.0.0.1."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from emu_client import GENERATIONS, I2V, T2V, Api

from airflow_provider_seedance.catalogue import BUILTIN_MODELS, estimate_credits
from airflow_provider_seedance.emulator.testing import DEFAULT_API_KEY, EmulatorHandle


def test_submit_answers_the_reference_shape_and_charges_64_for_image_to_video(api: Api, emu: EmulatorHandle) -> None:
    resp = api.submit()
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == {"success", "requestId", "status", "creditsCharged"}
    assert body["success"] is True
    assert body["requestId"].startswith("req_")
    assert body["status"] == "queued"
    assert body["creditsCharged"] == 64
    [job] = emu.admin.jobs()
    assert job["requestId"] == body["requestId"]
    assert job["request"] == I2V


def test_text_to_video_is_accepted_and_charged_40(api: Api, emu: EmulatorHandle) -> None:
    resp = api.submit(T2V)
    assert resp.status_code == 200, resp.text
    assert resp.json()["creditsCharged"] == 40
    [job] = emu.admin.jobs()
    assert job["textToVideo"] is True
    assert "mediaUrls" not in job["request"]


def test_get_returns_every_reference_field_plus_metadata(api: Api) -> None:
    rid = api.submit_ok(metadata={"order": 7, "tags": ["a"]})
    body = api.get(rid).json()
    assert body == {
        "success": True, "requestId": rid, "status": "queued", "model": I2V["model"], "prompt": I2V["prompt"],
        "duration": 5, "aspectRatio": "16:9", "output": None, "error": None, "metadata": {"order": 7, "tags": ["a"]},
    }


def test_succeeded_job_points_at_the_emulator_file(api: Api, emu: EmulatorHandle) -> None:
    rid = api.submit_ok()
    body = api.wait_status(rid, {"succeeded"})
    assert body["output"] == {"type": "video", "url": f"{emu.base_url}/files/{rid}.mp4"}
    assert body["error"] is None


def test_cancel_answers_the_reference_shape(api: Api) -> None:
    rid = api.submit_ok()
    resp = api.cancel(rid)
    assert resp.status_code == 200
    body = resp.json()
    assert {k: body[k] for k in ("success", "requestId", "status")} == {
        "success": True, "requestId": rid, "status": "cancelled"}
    assert api.get(rid).json()["status"] == "cancelled"


def test_models_lists_the_builtin_catalogue_without_a_key(emu: EmulatorHandle) -> None:
    resp = Api(emu, key=None).models()
    assert resp.status_code == 200
    assert resp.json() == {"success": True, "data": [s.to_catalogue_item() for s in BUILTIN_MODELS.values()]}


def test_models_includes_admin_added_model_which_submit_then_accepts(api: Api, emu: EmulatorHandle) -> None:
    emu.admin.add_model(id="seedance-3.0", durations=[6, 12], aspectRatios=["16:9"], resolutions=["1080p"],
                        pricing={"perSecond": {"1080p": 20}, "referenceMediaSurcharge": 10})
    ids = [item["id"] for item in api.models().json()["data"]]
    assert ids == [*BUILTIN_MODELS, "seedance-3.0"]
    ok = api.submit(model="seedance-3.0", duration=6, resolution="1080p")
    assert ok.status_code == 200, ok.text
    assert ok.json()["creditsCharged"] == 20 * 6 + 10
    bad = api.submit(model="seedance-3.0", duration=5, resolution="1080p")
    assert bad.status_code == 400
    assert bad.json()["error"]["field"] == "duration"
    emu.admin.remove_model("seedance-3.0")
    assert api.submit(model="seedance-3.0", duration=6, resolution="1080p").json()["error"]["field"] == "model"


BAD_BODIES: list[tuple[str, dict[str, Any], str, str]] = [
    ("missing model", {k: v for k, v in I2V.items() if k != "model"}, "model", "seedance-2.0"),
    ("unknown model", {**I2V, "model": "seedance-9"}, "model", "seedance-1.5-pro"),
    ("missing prompt", {k: v for k, v in I2V.items() if k != "prompt"}, "prompt", "non-empty"),
    ("blank prompt", {**I2V, "prompt": "   "}, "prompt", "non-empty"),
    ("prompt not text", {**I2V, "prompt": 5}, "prompt", "non-empty"),
    ("empty mediaUrls", {**I2V, "mediaUrls": []}, "mediaUrls", "omit the field"),
    ("six mediaUrls", {**I2V, "mediaUrls": [f"https://e.com/{i}.jpg" for i in range(6)]}, "mediaUrls", "1 to 5"),
    ("mediaUrls not a list", {**I2V, "mediaUrls": "https://e.com/a.jpg"}, "mediaUrls", "array"),
    ("plain http media", {**I2V, "mediaUrls": ["http://example.com/a.jpg"]}, "mediaUrls", "https://"),
    ("unsupported media type", {**I2V, "mediaUrls": ["https://e.com/a.pdf"]}, "mediaUrls", ".png"),
    ("duration too long", {**I2V, "duration": 16}, "duration", "4 to 15"),
    ("duration too short", {**I2V, "duration": 3}, "duration", "4 to 15"),
    ("duration as text", {**I2V, "duration": "5"}, "duration", "integer"),
    ("duration not for 1.5-pro", {**I2V, "model": "seedance-1.5-pro", "duration": 7}, "duration", "5 or 10"),
    ("bad aspect ratio", {**I2V, "aspectRatio": "4:3"}, "aspectRatio", "16:9"),
    ("blank aspect ratio", {**I2V, "aspectRatio": ""}, "aspectRatio", "non-blank"),
    ("bad resolution", {**I2V, "resolution": "4k"}, "resolution", "1080p"),
    ("http webhook", {**I2V, "webhookUrl": "http://example.com/hook"}, "webhookUrl", "https://"),
    ("metadata not an object", {**I2V, "metadata": [1, 2]}, "metadata", "JSON object"),
]


@pytest.mark.parametrize(("body", "field", "hint"), [b[1:] for b in BAD_BODIES], ids=[b[0] for b in BAD_BODIES])
def test_invalid_request_is_400_naming_the_field_and_charges_nothing(
    api: Api, emu: EmulatorHandle, body: dict[str, Any], field: str, hint: str
) -> None:
    resp = api.submit(body)
    assert resp.status_code == 400
    error = resp.json()
    assert error["success"] is False
    assert error["error"]["code"] == "invalid_request"
    assert error["error"]["field"] == field
    assert hint in error["error"]["message"]
    assert emu.admin.jobs() == []
    assert emu.admin.stats()["credits_charged"] == 0


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b""], ids=["not json", "array", "empty"])
def test_body_that_is_not_a_json_object_is_400(api: Api, raw: bytes) -> None:
    resp = api.session.post(api.emu.base_url + GENERATIONS, data=raw, headers={"Content-Type": "application/json"})
    assert resp.status_code == 400
    assert resp.json()["success"] is False
    assert resp.json()["error"]["code"] in ("invalid_json", "invalid_request")


@pytest.mark.parametrize(
    ("header", "auth", "message"),
    [(None, "missing", "Missing API key"), ("Bearer sd2_wrong", "invalid", "Invalid API key"),
     (f"Basic {DEFAULT_API_KEY}", "invalid", "Invalid API key"), ("Bearer ", "invalid", "Invalid API key")],
    ids=["missing", "wrong key", "wrong scheme", "empty bearer"],
)
def test_bad_key_is_401_on_every_authenticated_endpoint(
    emu: EmulatorHandle, header: str | None, auth: str, message: str
) -> None:
    rid = Api(emu).submit_ok()
    emu.admin.reset()
    headers = {"Authorization": header} if header is not None else {}
    url = emu.base_url + GENERATIONS
    for resp in (
        requests.post(url, json=I2V, headers=headers, timeout=10),
        requests.get(f"{url}/{rid}", headers=headers, timeout=10),
        requests.post(f"{url}/{rid}/cancel", headers=headers, timeout=10),
    ):
        assert resp.status_code == 401
        assert resp.json() == {"success": False, "error": {"code": "unauthorized", "message": message}}
    log = emu.admin.requests()
    assert [e["auth"] for e in log] == [auth] * 3
    assert emu.admin.jobs() == []


def test_auth_is_checked_before_the_request_id(emu: EmulatorHandle) -> None:
    assert Api(emu, key="sd2_bad").get("req_does_not_exist").status_code == 401
    assert Api(emu, key=None).get("req_does_not_exist").status_code == 401
    resp = Api(emu).get("req_does_not_exist")
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "not_found"
    assert "req_does_not_exist" in resp.json()["error"]["message"]


def test_unknown_id_is_404_for_cancel_too(api: Api) -> None:
    resp = api.cancel("req_nope")
    assert resp.status_code == 404
    assert resp.json()["success"] is False


def test_accepted_keys_are_configurable_and_jobs_are_private_to_their_key(emu: EmulatorHandle) -> None:
    emu.admin.configure(api_keys=["sd2_team_a", "sd2_team_b"])
    assert Api(emu).submit().status_code == 401  # the default key is no longer accepted
    rid = Api(emu, key="sd2_team_a").submit_ok()
    assert Api(emu, key="sd2_team_a").get(rid).status_code == 200
    assert Api(emu, key="sd2_team_b").get(rid).status_code == 404
    assert Api(emu, key="sd2_team_b").cancel(rid).status_code == 404
    assert emu.admin.job(rid)["keyIndex"] == 0


def test_cancel_of_a_finished_job_is_a_clear_409(api: Api) -> None:
    rid = api.submit_ok()
    api.wait_status(rid, {"succeeded"})
    resp = api.cancel(rid)
    assert resp.status_code == 409
    body = resp.json()
    assert body["success"] is False
    assert body["error"]["code"] == "conflict"
    assert "already succeeded" in body["error"]["message"]
    assert body["requestId"] == rid
    assert body["status"] == "succeeded"
    again = api.submit_ok()
    assert api.cancel(again).status_code == 200
    assert "already cancelled" in api.cancel(again).json()["error"]["message"]


def test_request_log_records_calls_but_never_the_key(api: Api, emu: EmulatorHandle) -> None:
    rid = api.submit_ok(T2V)
    api.get(rid)
    api.cancel(rid)
    Api(emu, key=None).get(rid)
    log = emu.admin.requests()
    assert [(e["method"], e["endpoint"], e["auth"], e["status"]) for e in log] == [
        ("POST", "submit", "valid", 200), ("GET", "status", "valid", 200),
        ("POST", "cancel", "valid", 200), ("GET", "status", "missing", 401),
    ]
    assert log[0]["body"] == T2V
    assert log[1]["path"] == f"{GENERATIONS}/{rid}"
    assert all(e["requestId"] == rid for e in log)
    assert DEFAULT_API_KEY not in str(log)
    assert DEFAULT_API_KEY not in str(emu.admin.stats())
    assert DEFAULT_API_KEY not in str(emu.admin.config())
    assert DEFAULT_API_KEY not in str(emu.admin.jobs())
    assert DEFAULT_API_KEY not in repr(emu)
    assert emu.admin.requests(endpoint="cancel") == [log[2]]
    # A misspelt filter is an error, not an empty list that makes a "zero POSTs" assertion pass.
    with pytest.raises(ValueError, match="endpoint must be one of"):
        emu.admin.requests(endpoint="submits")


def test_stats_count_calls_jobs_and_distinct_connections(api: Api, emu: EmulatorHandle) -> None:
    rids = [api.submit_ok() for _ in range(3)]
    for rid in rids:
        api.get(rid)
    api.cancel(rids[0])
    stats = emu.admin.stats()
    assert (stats["submits"], stats["gets"], stats["cancels"]) == (3, 3, 1)
    assert stats["connections"] == 1  # one keep-alive session
    assert stats["jobs"] == {"cancelled": 1, "queued": 2}
    assert stats["jobs_total"] == 3
    for _ in range(2):
        requests.get(f"{emu.base_url}{GENERATIONS}/{rids[1]}", headers=api.session.headers, timeout=10)
    assert emu.admin.stats()["connections"] == 3


def test_reset_forgets_everything_and_restores_settings(api: Api, emu: EmulatorHandle) -> None:
    api.submit_ok()
    emu.admin.add_fault(kind="http", status=500, times=-1, endpoint="models")
    emu.admin.set_next_jobs(never_finishes=True)
    emu.admin.configure(time_scale=5, balance=10)
    emu.admin.reset()
    stats = emu.admin.stats()
    assert (stats["submits"], stats["jobs_total"], stats["connections"]) == (0, 0, 0)
    assert emu.admin.requests() == []
    assert emu.admin.faults() == []
    assert emu.admin.config()["time_scale"] != 5
    assert stats["balances"][0]["balance"] == 1_000_000
    assert api.models().status_code == 200


def test_unknown_paths_and_methods_answer_json(emu: EmulatorHandle) -> None:
    missing = requests.get(emu.base_url + "/api/open/v1/nothing", timeout=10)
    assert missing.status_code == 404
    assert missing.json()["success"] is False
    wrong = requests.delete(emu.base_url + GENERATIONS, timeout=10)
    assert wrong.status_code == 405
    assert wrong.headers["Allow"] == "POST"


def test_admin_rejects_bad_input_naming_it(emu: EmulatorHandle) -> None:
    with pytest.raises(ValueError, match="kind must be one of"):
        emu.admin.add_fault(kind="explode")
    with pytest.raises(ValueError, match="endpoint must be one of"):
        emu.admin.add_fault(endpoint="everything")
    with pytest.raises(ValueError, match="unknown fault field"):
        emu.admin.add_fault(statuss=500)
    with pytest.raises(ValueError, match="unknown next-jobs field"):
        emu.admin.set_next_jobs(never=True)
    with pytest.raises(ValueError, match="unknown setting"):
        emu.admin.configure(timescale=1)
    with pytest.raises(ValueError, match="time_scale must be a number"):
        emu.admin.configure(time_scale="fast")


def test_price_of_every_model_duration_resolution_and_mode_is_the_estimate(api: Api, emu: EmulatorHandle) -> None:
    for spec in BUILTIN_MODELS.values():
        assert spec.durations is not None
        assert spec.resolutions is not None
        for duration in spec.durations:
            for resolution in spec.resolutions:
                for with_media in (True, False):
                    body = dict(I2V if with_media else T2V, model=spec.model_id, duration=duration,
                                resolution=resolution)
                    charged = api.submit(body).json()["creditsCharged"]
                    expected = estimate_credits(spec.model_id, duration=duration, resolution=resolution,
                                                with_media=with_media)
                    assert charged == expected, (spec.model_id, duration, resolution, with_media)
    # Omitted duration/resolution: the estimate's documented defaults (5 s, 720p) on both sides.
    minimal = api.submit({"model": "seedance-2.0", "prompt": "x"}).json()["creditsCharged"]
    assert minimal == estimate_credits("seedance-2.0", duration=None, resolution=None, with_media=False) == 40
