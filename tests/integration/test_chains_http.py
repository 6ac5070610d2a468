"""Chains through the HTTP API: checked at submission, children created on success."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser

from tests.conftest import SmtpServer
from tests.integration.conftest import Platform
from workers_core.sandbox.slack import SlackSandbox


def test_follow_up_errors_are_422_naming_the_field(platform: Platform) -> None:
    resp = platform.http.post("/v1/jobs", json={
        "task": "debug.echo", "payload": {},
        "then": [{"task": "debug.sleep", "payload": {"seconds": "long"}},
                 {"task": "debug.sleep", "payload": {"seconds": {"$parent": "result.x"}}},
                 {"task": "nope.nope"}]})
    assert resp.status_code == 422, resp.text
    fields = [e["field"] for e in resp.json()["errors"]]
    assert fields == ["then.0.payload.seconds", "then.2.task"]


def test_a_chain_runs_parent_then_children(platform: Platform) -> None:
    job_id = platform.submit("debug.echo", {"message": "factura 42"}, correlation_id="ord-9",
                             then=[{"task": "debug.echo",
                                    "payload": {"message": {"$parent": "result.message"}}}])
    parent = platform.wait_done(job_id)
    assert parent["status"] == "succeeded" and len(parent["children"]) == 1
    child = platform.wait_done(parent["children"][0])
    assert child["status"] == "succeeded" and child["result"]["message"] == "factura 42"
    assert child["parent_id"] == job_id and child["correlation_id"] == "ord-9"


def test_invoice_pdf_emailed_then_posted_to_slack(
    platform: Platform, smtp_server: SmtpServer, slack_sandbox: SlackSandbox
) -> None:
    """The documents chain of the issue, all through the HTTP API: render an invoice PDF,
    e-mail it as an attachment (arrives at the SMTP server), then post to Slack."""
    html = ("<h1>Factură fiscală nr. 42</h1><p>Cumpărător: Ștefănescu și Fiii SRL</p>"
            "<table><tr><td>Servicii</td><td>1.190,00 lei</td></tr></table>")
    job_id = platform.submit("pdf.render", {"html": html, "filename": "factura-42.pdf"},
                             correlation_id="chain-42", then=[{
        "task": "email.send",
        "payload": {"to": ["contabil@client.ro"], "subject": "Factura 42",
                    "text": "Atașat: factura.",
                    "attachments": [{"artifact_id": {"$parent": "result.artifact_id"},
                                     "filename": "factura-42.pdf"}]},
        "then": [{"task": "notify.slack",
                  "payload": {"text": "Factura 42 a fost trimisă", "channel": "#facturi"}}],
    }])
    render = platform.wait_done(job_id, timeout_s=120)
    assert render["status"] == "succeeded", render
    email = platform.wait_done(render["children"][0])
    assert email["status"] == "succeeded", email
    slack = platform.wait_done(email["children"][0])
    assert slack["status"] == "succeeded", slack
    assert slack["correlation_id"] == "chain-42"

    [envelope] = [e for e in smtp_server.capture.envelopes
                  if "contabil@client.ro" in e.rcpt_tos]
    message = BytesParser(policy=policy.default).parsebytes(envelope.content)
    [attachment] = list(message.iter_attachments())
    pdf = attachment.get_content()
    assert attachment.get_filename() == "factura-42.pdf" and pdf.startswith(b"%PDF-")
    assert pdf == platform.http.get(f"/v1/artifacts/{render['result']['artifact_id']}").content
    assert any(m.get("text") == "Factura 42 a fost trimisă" and m.get("ts") == slack["result"]["ts"]
               for m in slack_sandbox.messages)
