"""A tiny SigmaHQ-layout folder for importer and CLI tests: rules written for these tests
(not upstream ones), placed where SigmaHQ keeps rules so their links can be derived."""

from __future__ import annotations

from pathlib import Path

VSSADMIN_ID = "0b6f0b7e-5c1a-4c1a-9a55-6d9e00000001"
CLOUD_LOGIN_ID = "0b6f0b7e-5c1a-4c1a-9a55-6d9e00000002"
AWS_ID = "0b6f0b7e-5c1a-4c1a-9a55-6d9e00000003"

VSSADMIN = f"""title: Shadow copies removed with vssadmin (test rule)
id: {VSSADMIN_ID}
status: test
description: Written for the defensemap tests.
author: Test Author One
date: 2026-01-02
tags:
    - attack.impact
    - attack.t1490
logsource:
    category: process_creation
    product: windows
detection:
    selection:
        Image|endswith: '\\vssadmin.exe'
        CommandLine|contains|all:
            - 'delete'
            - 'shadows'
    condition: selection
falsepositives:
    - Backup software pruning its own snapshots
level: high
"""

CLOUD_LOGIN = f"""title: Azure CLI login on an endpoint (test rule)
id: {CLOUD_LOGIN_ID}
status: experimental
description: Written for the defensemap tests.
author: Test Author Two
date: 2026-01-03
references:
    - https://example.org/azure-cli-login
tags:
    - attack.lateral-movement
    - attack.t1021.007
logsource:
    category: process_creation
    product: windows
detection:
    selection:
        CommandLine|contains|all:
            - 'azure.cli'
            - 'login'
    condition: selection
level: medium
"""

AWS = f"""title: AWS console token request (test rule)
id: {AWS_ID}
status: test
description: Written for the defensemap tests.
author: Test Author Three
date: 2026-01-04
tags:
    - attack.t1021.007
logsource:
    product: aws
    service: cloudtrail
detection:
    selection:
        eventName: 'GetSigninToken'
    condition: selection
level: low
"""

RULES = {
    "rules/windows/process_creation/proc_creation_win_test_vssadmin.yml": VSSADMIN,
    "rules/windows/process_creation/proc_creation_win_test_azure_cli.yml": CLOUD_LOGIN,
    "rules-threat-hunting/cloud/aws/aws_test_signin_token.yml": AWS,
}


def write_layout(root: Path, files: dict[str, str] | None = None) -> Path:
    """Write ``files`` (default: the three test rules) under ``root``; returns ``root``."""
    for relpath, text in (RULES if files is None else files).items():
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root
