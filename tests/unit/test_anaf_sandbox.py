"""The ANAF sandbox's own protocol and limits, spoken to over real HTTP."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from workers_core.integrations.anaf.cui import with_check_digit
from workers_core.sandbox.anaf import (
    LOOKUP_PATH,
    TOKEN_PATH,
    AnafSandbox,
    AnafSandboxState,
    ScriptedFailure,
)

REDIRECT = "https://localhost:8443/anaf/callback"


@pytest.fixture
def anaf() -> Iterator[AnafSandbox]:
    with AnafSandbox(state=AnafSandboxState(lookup_interval_s=0.3)) as sandbox:
        yield sandbox


@pytest.fixture
def http(anaf: AnafSandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=anaf.url, timeout=5) as client:
        yield client


def basic(anaf: AnafSandbox, secret: str | None = None) -> dict[str, str]:
    raw = f"{anaf.client_id}:{secret or anaf.client_secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def login(anaf: AnafSandbox, http: httpx.Client) -> dict[str, str]:
    code = anaf.issue_code(REDIRECT)
    answer = http.post(
        TOKEN_PATH,
        headers=basic(anaf),
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
    )
    assert answer.status_code == 200
    tokens: dict[str, str] = answer.json()
    return tokens


def refresh(anaf: AnafSandbox, http: httpx.Client, token: str) -> httpx.Response:
    return http.post(
        TOKEN_PATH,
        headers=basic(anaf),
        data={"grant_type": "refresh_token", "refresh_token": token},
    )


def test_lookup_answers_found_and_not_found_as_of_the_date(http: httpx.Client) -> None:
    unknown = with_check_digit(7777777)
    answer = http.post(
        LOOKUP_PATH,
        json=[{"cui": 18547290, "data": "2025-03-01"}, {"cui": unknown, "data": "2025-03-01"}],
    )
    body = answer.json()
    assert answer.status_code == 200 and body["notFound"] == [unknown]
    [found] = body["found"]
    assert found["date_generale"]["data"] == "2025-03-01"
    assert found["date_generale"]["statusRO_e_Factura"] is True
    assert isinstance(found["inregistrare_scop_Tva"]["perioade_TVA"], list)


def test_more_than_100_cuis_are_refused(http: httpx.Client) -> None:
    body = [{"cui": with_check_digit(1000000 + i), "data": "2025-03-01"} for i in range(101)]
    answer = http.post(LOOKUP_PATH, json=body)
    assert answer.status_code == 400 and "100" in answer.json()["message"]


def test_a_second_lookup_within_the_interval_is_refused_with_retry_after(
    anaf: AnafSandbox, http: httpx.Client
) -> None:
    body = [{"cui": 18547290, "data": "2025-03-01"}]
    assert http.post(LOOKUP_PATH, json=body).status_code == 200
    refused = http.post(LOOKUP_PATH, json=body)
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
    assert [c.status for c in anaf.lookups] == [200, 429]


def test_overload_can_be_answered_with_the_waf_page() -> None:
    state = AnafSandboxState(lookup_interval_s=60, over_limit="waf")
    with AnafSandbox(state=state) as anaf, httpx.Client(base_url=anaf.url) as http:
        body = [{"cui": 18547290, "data": "2025-03-01"}]
        http.post(LOOKUP_PATH, json=body)
        page = http.post(LOOKUP_PATH, json=body)
    assert page.status_code == 200 and "Request Rejected" in page.text


def test_a_script_tag_triggers_the_waf(http: httpx.Client) -> None:
    page = http.post(LOOKUP_PATH, content=b'[{"cui": "<script>", "data": "x"}]')
    assert page.status_code == 200 and "support ID is" in page.text


def test_scripted_failures_come_first_then_the_real_answer(
    anaf: AnafSandbox, http: httpx.Client
) -> None:
    anaf.fail_next(
        ScriptedFailure(status=503, retry_after_s=2), ScriptedFailure(waf=True, route=LOOKUP_PATH)
    )
    first = http.post(LOOKUP_PATH, json=[{"cui": 18547290, "data": "2025-03-01"}])
    second = http.post(LOOKUP_PATH, json=[{"cui": 18547290, "data": "2025-03-01"}])
    third = http.post(LOOKUP_PATH, json=[{"cui": 18547290, "data": "2025-03-01"}])
    assert (first.status_code, first.headers["Retry-After"]) == (503, "2")
    assert "Request Rejected" in second.text
    assert third.status_code == 200 and anaf.requests == 3


def test_a_dropped_connection_gives_no_answer(anaf: AnafSandbox, http: httpx.Client) -> None:
    anaf.fail_next(ScriptedFailure(drop=True))
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):  # EOF or RST
        http.post(LOOKUP_PATH, json=[{"cui": 18547290, "data": "2025-03-01"}])


def test_authorize_redirects_back_with_a_code_and_the_state(
    anaf: AnafSandbox, http: httpx.Client
) -> None:
    answer = http.get(
        "/anaf-oauth2/v1/authorize",
        params={
            "response_type": "code",
            "client_id": anaf.client_id,
            "redirect_uri": REDIRECT,
            "state": "xyz",
        },
    )
    assert answer.status_code == 302
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    assert query["state"] == ["xyz"] and query["code"]


def test_a_code_works_once(anaf: AnafSandbox, http: httpx.Client) -> None:
    code = anaf.issue_code(REDIRECT)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    assert http.post(TOKEN_PATH, headers=basic(anaf), data=form).status_code == 200
    again = http.post(TOKEN_PATH, headers=basic(anaf), data=form)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_a_wrong_client_secret_is_invalid_client(anaf: AnafSandbox, http: httpx.Client) -> None:
    answer = http.post(
        TOKEN_PATH,
        headers=basic(anaf, "wrong"),
        data={"grant_type": "refresh_token", "refresh_token": "x"},
    )
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_client"


def test_refresh_rotates_and_a_replayed_refresh_token_is_invalid_grant(
    anaf: AnafSandbox, http: httpx.Client
) -> None:
    tokens = login(anaf, http)
    rotated = refresh(anaf, http, tokens["refresh_token"])
    assert rotated.status_code == 200
    assert rotated.json()["refresh_token"] != tokens["refresh_token"]
    replay = refresh(anaf, http, tokens["refresh_token"])
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert anaf.refreshes == 1


def test_the_hello_endpoint_checks_the_bearer_token(anaf: AnafSandbox, http: httpx.Client) -> None:
    tokens = login(anaf, http)
    ok = http.get(
        "/TestOauth/jaxrs/hello",
        params={"name": "x"},
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    )
    refused = http.get("/TestOauth/jaxrs/hello", headers={"Authorization": "Bearer nope"})
    assert ok.json() == {"message": "Hello x"} and refused.status_code == 401
