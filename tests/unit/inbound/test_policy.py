"""Verdict policy and the sender allowlist."""

from __future__ import annotations

from typing import Any

import pytest

from mailflow.contracts.inbound import Verdicts
from mailflow.errors import PolicyRejected
from mailflow.inbound.policy import check_sender, check_verdicts


def test_virus_fail_rejects_by_default(pure_settings: Any) -> None:
    with pytest.raises(PolicyRejected) as info:
        check_verdicts(Verdicts(virus="FAIL"), pure_settings().inbound)
    assert info.value.code == "virus_detected"
    assert not info.value.retryable


def test_other_fails_only_reject_when_configured(pure_settings: Any) -> None:
    failing = Verdicts(spam="FAIL", spf="FAIL", dkim="FAIL", dmarc="FAIL", virus="PASS")
    check_verdicts(failing, pure_settings().inbound)  # exposed, not rejected
    for setting, code in [
        ("reject_spam", "spam_detected"),
        ("reject_spf_fail", "spf_failed"),
        ("reject_dkim_fail", "dkim_failed"),
        ("reject_dmarc_fail", "dmarc_failed"),
    ]:
        with pytest.raises(PolicyRejected) as info:
            check_verdicts(failing, pure_settings(**{setting: True}).inbound)
        assert info.value.code == code
    check_verdicts(Verdicts(virus="GRAY"), pure_settings().inbound)


def test_sender_allowlist(pure_settings: Any) -> None:
    open_settings = pure_settings().inbound
    check_sender("anyone@anywhere.test", None, open_settings)
    strict = pure_settings(allowed_sender_domains="partner.test").inbound
    check_sender("a@partner.test", None, strict)
    check_sender("a@mail.PARTNER.test", None, strict)
    check_sender(None, "bounce@partner.test", strict)
    for sender in ("a@evilpartner.test", "a@partner.test.evil", None):
        with pytest.raises(PolicyRejected) as info:
            check_sender(sender, None, strict)
        assert info.value.code == "sender_not_allowed"
