"""checkov finds nothing in infra/; every deliberate skip is a #checkov:skip comment with its reason inside
the resource it concerns."""

from __future__ import annotations

from tests.deploy.checkov_scan import describe, frameworks, results


def test_checkov_finds_no_failed_check() -> None:
    failed = results("infra", "failed_checks")
    assert not failed, "\n".join(describe(c) for c in failed)
    assert frameworks("infra") >= {"terraform"}
    assert len(results("infra", "passed_checks")) > 100


def test_every_skip_says_why() -> None:
    for check in results("infra", "skipped_checks"):
        reason = (check["check_result"].get("suppress_comment") or "").strip()
        assert len(reason) > 30, f"{describe(check)}: a skip needs its reason"
