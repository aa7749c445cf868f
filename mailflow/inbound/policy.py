"""Whole-email policy: SES verdicts and the sender-domain allowlist (pure).

A rejection raises `PolicyRejected` with a stable `code` (the `reason` label of metrics and
the DLQ record's `errorCode`); the email then reaches no app. Only a virus FAIL rejects by
default: spam and authentication verdicts are exposed in `metadata.verdicts` and each can
be configured to reject.
"""

from __future__ import annotations

from mailflow.contracts.inbound import Verdicts
from mailflow.errors import PolicyRejected
from mailflow.inbound.config import InboundSettings


def check_verdicts(verdicts: Verdicts, settings: InboundSettings) -> None:
    """Raise PolicyRejected when a verdict the settings care about is FAIL."""
    rules = (
        (settings.reject_virus, verdicts.virus, "virus_detected", "SES virus scan: FAIL"),
        (settings.reject_spam, verdicts.spam, "spam_detected", "SES spam verdict: FAIL"),
        (settings.reject_spf_fail, verdicts.spf, "spf_failed", "SPF verdict: FAIL"),
        (settings.reject_dkim_fail, verdicts.dkim, "dkim_failed", "DKIM verdict: FAIL"),
        (settings.reject_dmarc_fail, verdicts.dmarc, "dmarc_failed", "DMARC verdict: FAIL"),
    )
    for enabled, status, code, reason in rules:
        if enabled and status == "FAIL":
            raise PolicyRejected(f"email rejected: {reason}", code=code)


def sender_domain(address: str | None) -> str | None:
    if not address or "@" not in address:
        return None
    return address.rpartition("@")[2].strip().strip(">").lower().rstrip(".") or None


def check_sender(
    from_address: str | None, envelope_sender: str | None, settings: InboundSettings
) -> None:
    """Enforce the allowlist on the From domain (the envelope sender when From is missing).

    The From domain is what DMARC authenticates: combine the allowlist with
    `reject_dmarc_fail` for it to mean more than a header check.
    """
    allowed = settings.allowed_sender_domains
    if not allowed:
        return
    domain = sender_domain(from_address) or sender_domain(envelope_sender)
    if domain is None or not any(domain == d or domain.endswith("." + d) for d in allowed):
        raise PolicyRejected(
            f"sender domain {domain or '(none)'} is not in the allowlist",
            code="sender_not_allowed",
        )
