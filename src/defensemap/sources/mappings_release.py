"""The published Mappings Explorer files and where to download them.

Mappings Explorer has no release index, so the files it publishes are listed here (their
paths are facts of its repository layout: ``mappings/<framework>/attack-<ver>/<framework>-<ver>/
<domain>/<file>.json``). A mirror with the same layout works through ``--source``.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_SOURCE = (
    "https://raw.githubusercontent.com/center-for-threat-informed-defense/mappings-explorer/main"
)

PUBLISHED = (
    "aws/attack-16.1/aws-12.12.2024/enterprise/aws-12.12.2024_attack-16.1-enterprise.json",
    "aws/attack-9.0/aws-09.21.2021/enterprise/aws-09.21.2021_attack-9.0-enterprise.json",
    "azure/attack-16.1/azure-04.26.2025/enterprise/azure-04.26.2025_attack-16.1-enterprise.json",
    "azure/attack-8.2/azure-06.29.2021/enterprise/azure-06.29.2021_attack-8.2-enterprise.json",
    "cri_profile/attack-16.1/cri_profile-v2.1/enterprise/cri_profile-v2.1_attack-16.1-enterprise.json",
    "csa_ccm/attack-17.1/csa_ccm-4.1/enterprise/csa_ccm-4.1_attack-17.1-enterprise.json",
    "gcp/attack-10.0/gcp-06.28.2022/enterprise/gcp-06.28.2022_attack-10.0-enterprise.json",
    "gcp/attack-16.1/gcp-03.06.2025/enterprise/gcp-03.06.2025_attack-16.1-enterprise.json",
    "intel-vpro/attack-15.1/intel-vpro-08.20.2024/enterprise/"
    "intel-vpro-08.20.2024_attack-15.1-enterprise.json",
    "kev/attack-15.1/kev-02.13.2025/enterprise/kev-02.13.2025_attack-15.1-enterprise.json",
    "kev/attack-15.1/kev-02.13.2025/mobile/kev-02.13.2025_attack-15.1-mobile.json",
    "kev/attack-16.1/kev-07.28.2025/enterprise/kev-07.28.2025_attack-16.1-enterprise.json",
    "kev/attack-16.1/kev-07.28.2025/mobile/kev-07.28.2025_attack-16.1-mobile.json",
    "m365/attack-14.1/m365-12.11.2023/enterprise/m365-12.11.2023_attack-14.1-enterprise.json",
    "m365/attack-16.1/m365-07.18.2025/enterprise/m365-07.18.2025_attack-16.1-enterprise.json",
    *(
        f"nist_800_53/attack-{ver}/nist_800_53-{rev}/enterprise/nist_800_53-{rev}_attack-{ver}-enterprise.json"
        for ver, revs in (
            ("8.2", ("rev4", "rev5")),
            ("9.0", ("rev4", "rev5")),
            ("10.1", ("rev4", "rev5")),
            ("12.1", ("rev4", "rev5")),
            ("14.1", ("rev4", "rev5")),
            ("16.1", ("rev5",)),
        )
        for rev in revs
    ),
    "veris/attack-9.0/veris-1.3.5/enterprise/veris-1.3.5_attack-9.0-enterprise.json",
    *(
        f"veris/attack-{ver}/veris-{rel}/{domain}/veris-{rel}_attack-{ver}-{domain}.json"
        for ver, rel in (("12.1", "1.3.7"), ("16.1", "1.4.0"))
        for domain in ("enterprise", "ics", "mobile")
    ),
)


@dataclass(frozen=True)
class MappingDownload:
    path: str
    url: str

    @property
    def framework(self) -> str:
        return self.path.split("/", 1)[0]


def published(source: str, frameworks: list[str]) -> list[MappingDownload]:
    """Download URLs under ``source`` (``<source>/mappings/<path>``), optionally filtered."""
    root = source.rstrip("/")
    chosen = [p for p in PUBLISHED if not frameworks or p.split("/", 1)[0] in frameworks]
    return [MappingDownload(p, f"{root}/mappings/{p}") for p in chosen]


OFFLINE_HINT = (
    "offline or blocked? copy the Mappings Explorer files on another machine and load them "
    "with `defensemap import mappings PATH`"
)
