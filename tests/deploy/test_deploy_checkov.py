"""checkov finds nothing in deploy/ (raw manifests and every rendered kustomization) or in the Dockerfile;
every deliberate skip is written next to the object it concerns, with its reason."""

from __future__ import annotations

import pytest

from tests.deploy.checkov_scan import describe, frameworks, results


@pytest.mark.parametrize("target", ["deploy", "Dockerfile"])
def test_checkov_finds_no_failed_check(target: str) -> None:
    failed = results(target, "failed_checks")
    assert not failed, "\n".join(describe(c) for c in failed)
    assert results(target, "passed_checks"), f"checkov checked nothing in {target}"


def test_checkov_scans_raw_manifests_and_rendered_kustomizations() -> None:
    assert {"kubernetes", "kustomize"} <= frameworks("deploy")
    assert frameworks("Dockerfile") == {"dockerfile"}


def test_every_skip_says_why() -> None:
    skipped = results("deploy", "skipped_checks")
    assert skipped
    for check in skipped:
        reason = (check["check_result"].get("suppress_comment") or "").strip()
        assert len(reason) > 30, f"{describe(check)}: a skip needs its reason"
