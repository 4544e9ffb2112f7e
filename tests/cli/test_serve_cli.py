"""`defensemap serve` refuses to expose the store without a usable token (checked before any
socket is opened)."""

from __future__ import annotations

import pytest


def test_a_non_loopback_address_needs_a_token(cli, home) -> None:  # type: ignore[no-untyped-def]
    result = cli("serve", "--host", "0.0.0.0")
    assert result.exit_code == 2
    assert "exposes the store beyond this machine" in result.stderr and "--token" in result.stderr


@pytest.mark.parametrize("token", ["short", "x" * 15, "sixteen;chars-ok!", "with space inside!!"])
def test_a_token_that_cannot_travel_in_a_cookie_or_url_is_refused(cli, home, token: str) -> None:  # type: ignore[no-untyped-def]
    result = cli("serve", "--host", "0.0.0.0", "--token", token)
    assert result.exit_code == 2
    assert "at least 16 letters, digits or - _ . ~" in result.stderr
