"""Webhook subscriptions end to end below HTTP: real Redis, a real receiver on loopback.

Signatures are checked with the ``standardwebhooks`` library, not with our own code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from standardwebhooks import Webhook as StandardWebhook

from tests.loopback import Receiver
from workers_core.clock import ManualClock
from workers_core.config import Settings
from workers_core.events.destinations import DestinationPolicy
from workers_core.events.dispatcher import WebhookDispatcher
from workers_core.events.models import DeliveryOutcome, EventFilter, WebhookStatus
from workers_core.events.sender import WebhookSender
from workers_core.events.signature import new_secret, sign
from workers_core.events.webhook_store import WebhookDisabled, WebhookStore
from workers_core.integrations.netguard import BlockedUrl
from workers_core.jobs.models import JobSubmission
from workers_core.jobs.retry import RetryPolicy
from workers_core.jobs.store import JobStore, NewJob


@pytest.fixture
async def hooks(store: JobStore, clock: ManualClock) -> WebhookStore:
    return WebhookStore(store.redis, store.keys, log_size=20, dead_letter_max=10,
                        clock=clock)


@pytest.fixture
async def dispatcher(store: JobStore, hooks: WebhookStore,
                     clock: ManualClock) -> AsyncIterator[WebhookDispatcher]:
    policy = DestinationPolicy(["127.0.0.1"], allow_loopback=True)
    d = WebhookDispatcher(store.redis, hooks, WebhookSender(policy, timeout_s=5),
                          consumer="test-1",
                          retry=RetryPolicy(max_attempts=3, backoff_base_s=1, backoff_max_s=4),
                          block_ms=50, claim_idle_s=30, max_parallel=8, clock=clock)
    await d.ensure_group()
    yield d
    await d.sender.aclose()


async def submit(store: JobStore, task: str = "debug.echo", **payload: Any) -> str:
    sub = JobSubmission(task=task, payload=payload or {"message": "salut"})
    [stored] = await store.submit_many([NewJob(submission=sub, queue="debug", max_attempts=1)])
    return stored.id


async def steps(d: WebhookDispatcher, n: int = 3) -> None:
    for _ in range(n):
        await d.step()


# --- signatures ------------------------------------------------------------------------


def test_signature_verifies_with_the_standard_webhooks_library() -> None:
    secret = new_secret()
    body = b'{"type":"job.succeeded","data":{"job_id":"j1"}}'
    import time

    ts = int(time.time())
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(ts),
               "webhook-signature": sign(secret, "msg_1", ts, body)}
    assert StandardWebhook(secret).verify(body, headers)["data"]["job_id"] == "j1"


def test_a_tampered_body_fails_verification() -> None:
    from standardwebhooks.webhooks import WebhookVerificationError

    secret = new_secret()
    import time

    ts = int(time.time())
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(ts),
               "webhook-signature": sign(secret, "msg_1", ts, b'{"a":1}')}
    with pytest.raises(WebhookVerificationError):
        StandardWebhook(secret).verify(b'{"a":2}', headers)


# --- destinations ----------------------------------------------------------------------

DNS = {"hooks.example.com": ["93.184.215.14"], "intranet.example.com": ["10.0.0.7"],
       "metadata.example.com": ["169.254.169.254"], "localhost": ["127.0.0.1", "::1"]}


async def fake_dns(host: str, port: int) -> list[str]:
    return DNS[host]


@pytest.mark.parametrize("url, reason", [
    ("https://127.0.0.1:9/x", "loopback"),
    ("https://localhost/x", "loopback"),
    ("https://[::1]/x", "loopback"),
    ("https://10.1.2.3/x", "private"),
    ("https://192.168.0.10/x", "private"),
    ("https://intranet.example.com/x", "private"),
    ("https://169.254.169.254/latest/meta-data", "link-local"),
    ("https://metadata.example.com/x", "link-local"),
    ("https://[::ffff:127.0.0.1]/x", "loopback"),
])
async def test_loopback_private_and_metadata_destinations_are_refused(url: str,
                                                                      reason: str) -> None:
    policy = DestinationPolicy(["*"], resolver=fake_dns)
    with pytest.raises(BlockedUrl, match=reason):
        await policy.check(url)


async def test_link_local_is_refused_even_with_private_and_loopback_allowed() -> None:
    policy = DestinationPolicy(["*"], allow_private=True, allow_loopback=True, resolver=fake_dns)
    assert (await policy.check("https://10.1.2.3/x")).ip.is_private
    assert (await policy.check("http://127.0.0.1:8080/x")).ip.is_loopback
    with pytest.raises(BlockedUrl, match="link-local"):
        await policy.check("https://169.254.169.254/x")


@pytest.mark.parametrize("url, message", [
    ("https://evil.example.org/x", "WORKERS_WEBHOOK_ALLOWED_HOSTS"),
    ("http://hooks.example.com/x", "plain http"),
    ("ftp://hooks.example.com/x", "https"),
    ("https://user:pw@hooks.example.com/x", "credentials"),
])
async def test_hosts_off_the_allowlist_plain_http_and_credentials_are_refused(
        url: str, message: str) -> None:
    policy = DestinationPolicy(["hooks.example.com", "*.partner.ro"], resolver=fake_dns)
    with pytest.raises(BlockedUrl, match=message):
        await policy.check(url)


async def test_subdomain_wildcards_match_subdomains_only() -> None:
    dns = {"a.partner.ro": ["93.184.215.14"], "partner.ro": ["93.184.215.14"]}

    async def resolver(host: str, port: int) -> list[str]:
        return dns[host]

    policy = DestinationPolicy(["*.partner.ro"], resolver=resolver)
    assert (await policy.check("https://a.partner.ro/h")).host == "a.partner.ro"
    with pytest.raises(BlockedUrl):
        await policy.check("https://partner.ro/h")


async def test_dns_that_turns_private_after_registration_is_caught_at_delivery() -> None:
    answers = {"hooks.example.com": ["93.184.215.14"]}

    async def resolver(host: str, port: int) -> list[str]:
        return answers[host]

    policy = DestinationPolicy(["hooks.example.com"], resolver=resolver)
    await policy.check("https://hooks.example.com/h")  # registration: fine
    answers["hooks.example.com"] = ["10.0.0.5"]  # rebinding
    result = await WebhookSender(policy, timeout_s=1).post("https://hooks.example.com/h", {}, b"{}")
    assert result.blocked and result.status_code is None
    assert "private" in (result.error or "")


# --- delivery ---------------------------------------------------------------------------


async def test_events_are_delivered_signed_with_a_stable_webhook_id(
        store: JobStore, hooks: WebhookStore, dispatcher: WebhookDispatcher,
        receiver: Receiver) -> None:
    hook = await hooks.create(receiver.url, EventFilter(), "erp", new_secret())
    job_id = await submit(store)
    await steps(dispatcher)
    assert len(receiver.received) == 1
    headers, body = receiver.received[0]
    event = StandardWebhook(hook.secret).verify(body, headers)
    assert event["type"] == "job.queued" and event["data"]["job_id"] == job_id
    assert headers["webhook-id"] == f"msg_{hook.id}_{event['id']}"
    assert headers["content-type"].startswith("application/cloudevents+json")
    [attempt] = await hooks.deliveries(hook.id, 10)
    assert attempt.outcome is DeliveryOutcome.DELIVERED and attempt.status_code == 204


async def test_filters_pick_events_by_type_and_task(
        store: JobStore, hooks: WebhookStore, dispatcher: WebhookDispatcher,
        receiver: Receiver) -> None:
    await hooks.create(receiver.url, EventFilter(types=["job.queued"], task="debug.sleep"),
                       "", new_secret())
    await hooks.create(receiver.url, EventFilter(types=["job.succeeded"]), "", new_secret())
    await submit(store, "debug.echo")
    wanted = await submit(store, "debug.sleep", seconds=0)
    await steps(dispatcher)
    assert [e["data"]["job_id"] for e in receiver.events] == [wanted]


async def test_a_receiver_failing_then_recovering_gets_the_event_after_retries(
        store: JobStore, hooks: WebhookStore, dispatcher: WebhookDispatcher,
        receiver: Receiver, clock: ManualClock) -> None:
    receiver.fail_first = 2
    hook = await hooks.create(receiver.url, EventFilter(), "", new_secret())
    await submit(store)
    await steps(dispatcher, 2)
    assert receiver.calls == 1 and not receiver.received  # not due again yet
    for _ in range(2):
        clock.advance(5)  # past the (capped, jittered) backoff
        await steps(dispatcher, 1)
    assert receiver.calls == 3 and len(receiver.received) == 1
    attempts = await hooks.deliveries(hook.id, 10)  # newest first
    assert [a.outcome for a in attempts] == [DeliveryOutcome.DELIVERED, DeliveryOutcome.RETRYING,
                                             DeliveryOutcome.RETRYING]
    assert [a.error for a in attempts[1:]] == ["HTTP 500", "HTTP 500"]
    assert len({a.message_id for a in attempts}) == 1  # one webhook-id for every attempt
    assert not await hooks.dead_letters(hook.id, 10)


async def test_a_receiver_always_failing_gets_a_dead_letter_then_a_redelivery(
        store: JobStore, hooks: WebhookStore, dispatcher: WebhookDispatcher,
        receiver: Receiver, clock: ManualClock) -> None:
    receiver.fail_first, receiver.fail_status = -1, 503
    hook = await hooks.create(receiver.url, EventFilter(), "", new_secret())
    job_id = await submit(store)
    for _ in range(4):
        await steps(dispatcher, 1)
        clock.advance(5)
    assert receiver.calls == 3  # max_attempts
    [letter] = await hooks.dead_letters(hook.id, 10)
    assert letter.last_error == "HTTP 503" and letter.attempts == 3
    assert letter.event["data"]["job_id"] == job_id

    receiver.fail_first = 0  # the receiver is back
    assert await hooks.redeliver(hook.id) == 1
    await steps(dispatcher, 1)
    assert [e["data"]["job_id"] for e in receiver.events] == [job_id]
    assert not await hooks.dead_letters(hook.id, 10)


async def test_410_gone_disables_the_subscription(
        store: JobStore, hooks: WebhookStore, dispatcher: WebhookDispatcher,
        receiver: Receiver) -> None:
    receiver.fail_first, receiver.fail_status = -1, 410
    hook = await hooks.create(receiver.url, EventFilter(), "", new_secret())
    await submit(store)
    await steps(dispatcher)
    assert receiver.calls == 1
    got = await hooks.get(hook.id)
    assert got.status is WebhookStatus.DISABLED and "410" in (got.disabled_reason or "")
    await submit(store)
    await steps(dispatcher)
    assert receiver.calls == 1  # nothing more is sent to it
    with pytest.raises(WebhookDisabled):
        await hooks.redeliver(hook.id)


async def test_an_event_taken_by_a_dead_replica_is_fanned_out_by_another(
        store: JobStore, hooks: WebhookStore, dispatcher: WebhookDispatcher,
        receiver: Receiver) -> None:
    await hooks.create(receiver.url, EventFilter(), "", new_secret())
    await submit(store)
    # A replica reads the event and dies before acknowledging it.
    taken = await store.redis.xreadgroup("webhooks", "dead-replica", {store.keys.events: ">"})
    assert taken
    dispatcher.claim_idle_ms = 0  # idle long enough, at once
    await steps(dispatcher)
    assert len(receiver.received) == 1


async def test_two_replicas_deliver_each_event_once(
        store: JobStore, hooks: WebhookStore, dispatcher: WebhookDispatcher,
        receiver: Receiver, settings: Settings) -> None:
    await hooks.create(receiver.url, EventFilter(), "", new_secret())
    other = WebhookDispatcher(store.redis, hooks, dispatcher.sender, consumer="test-2",
                              retry=dispatcher.retry, block_ms=50, claim_idle_s=30,
                              max_parallel=8, clock=hooks.clock)
    ids = [await submit(store) for _ in range(5)]
    for _ in range(3):
        await dispatcher.step()
        await other.step()
    assert sorted(e["data"]["job_id"] for e in receiver.events) == sorted(ids)


async def test_deleting_a_subscription_drops_what_it_was_owed(
        store: JobStore, hooks: WebhookStore, dispatcher: WebhookDispatcher,
        receiver: Receiver, clock: ManualClock) -> None:
    receiver.fail_first = -1
    hook = await hooks.create(receiver.url, EventFilter(), "", new_secret())
    await submit(store)
    await steps(dispatcher, 2)
    await hooks.delete(hook.id)
    clock.advance(5)
    await steps(dispatcher, 1)
    assert receiver.calls == 1
    assert await hooks.next_due_in() is None
