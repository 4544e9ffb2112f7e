"""Defender XDR / Sentinel built-in functions that real hunting queries call.

Advanced hunting has a handful of functions that are not KQL built-ins but live in the
service: ``AssignedIPAddresses()``, ``DeviceFromIP()``, ``FileProfile()``, ``SeenBy()``, and
Sentinel's ``_GetWatchlist()``. A query that calls one cannot run locally unless we say
what it means. Each is therefore either

* **provided**: written here in KQL over tables we have, and handed to duckdb-kql as a
  stored function (``functions=``), so it translates and runs like any other KQL; or
* **refused**: the answer needs data that only Microsoft's cloud has (global file
  prevalence, device-discovery sightings, UEBA insights, workspace watchlists). Guessing
  would give a wrong answer, so a call is refused by name with the reason below.

``BUILTINS`` is the documented table of both. The provided definitions follow Microsoft's
published descriptions; where a description leaves a choice open, the choice made is
written in the reason so a reader knows exactly what is computed.

``invoke DeviceFromIP()`` takes the rows before it as a *tabular* argument. duckdb-kql's
stored functions take scalar parameters only, but a query-local ``let`` may take a table,
so that form is supplied as a one-line ``let`` put in front of the query
(:data:`INVOKE_PRELUDES`); :mod:`defensemap.engine.kql` does that and moves every reported
column back to where the user wrote it.
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "BUILTINS",
    "INVOKE_PRELUDES",
    "STORED_FUNCTIONS",
    "Availability",
    "refusal_reason",
]

Availability = Literal["provided", "refused"]

# The network reports a device is "on" at a time: for every device and network adapter,
# its latest DeviceNetworkInfo report at or before that time (or the latest report at all
# when no time is given), one row per IP address in the report's IPAddresses array.
# A device keeps its last reported addresses until it reports again: there is no cut-off.
_CURRENT_ADDRESSES = """
function with (docstring = "defensemap: adapter addresses current at y")
_dm_CurrentAddresses(y:datetime = datetime(null)) {
    DeviceNetworkInfo
    | where isnull(y) or Timestamp <= y
    | summarize arg_max(Timestamp, *) by DeviceId, NetworkAdapterName
    | mv-expand IPAddressEntry = IPAddresses
    | extend IPAddress = tostring(IPAddressEntry.IPAddress),
             IPType = tostring(IPAddressEntry.AddressType)
    | where isnotempty(IPAddress)
}
"""

_ASSIGNED_IP_ADDRESSES = """
function with (docstring = "defensemap: Defender AssignedIPAddresses()")
AssignedIPAddresses(x:string, y:datetime = datetime(null)) {
    _dm_CurrentAddresses(y)
    | where DeviceId == x or DeviceName == x
    | project Timestamp, IPAddress, IPType, NetworkAdapterType, ConnectedNetworks
}
"""

_DEVICE_FROM_IP = """
function with (docstring = "defensemap: Defender DeviceFromIP(), scalar form")
DeviceFromIP(ip:string, y:datetime = datetime(null)) {
    _dm_CurrentAddresses(y)
    | where IPAddress == ip
    | project IP = IPAddress, DeviceId
    | distinct IP, DeviceId
}
"""

#: Definitions for duckdb-kql's ``functions=`` argument, in dependency order.
STORED_FUNCTIONS: tuple[str, ...] = tuple(
    " ".join(text.split()) for text in (_CURRENT_ADDRESSES, _ASSIGNED_IP_ADDRESSES, _DEVICE_FROM_IP)
)

#: ``invoke Name()`` forms: a single-line ``let`` that defines Name with a tabular
#: parameter, put in front of a query that invokes it. Single-line, so only columns on the
#: query's first line move, by exactly the prelude's length.
INVOKE_PRELUDES: dict[str, str] = {
    # The body repeats _dm_CurrentAddresses instead of calling it: duckdb-kql 1.1.2 does not
    # substitute a let-function's parameter passed on to a stored function (it renders it
    # as a column and DuckDB reports "Referenced column not found").
    "DeviceFromIP": (
        "let DeviceFromIP = (T:(IP:string), at:datetime = datetime(null)) { "
        "T | distinct IP "
        "| join kind=inner (DeviceNetworkInfo "
        "| where isnull(at) or Timestamp <= at "
        "| summarize arg_max(Timestamp, *) by DeviceId, NetworkAdapterName "
        "| mv-expand IPAddressEntry = IPAddresses "
        "| project IP = tostring(IPAddressEntry.IPAddress), DeviceId "
        "| where isnotempty(IP) "
        "| distinct IP, DeviceId) on IP "
        "| project IP, DeviceId }; "
    ),
}

_NO_OFFLINE = "cannot be computed from local logs"

BUILTINS: dict[str, tuple[Availability, str]] = {
    "AssignedIPAddresses": (
        "provided",
        "AssignedIPAddresses(x, y) over DeviceNetworkInfo: for device x (DeviceId or "
        "DeviceName), the addresses in each network adapter's latest report at or before y "
        "(latest overall without y), with Timestamp = that report's time, IPType = the "
        "address's AddressType, NetworkAdapterType and ConnectedNetworks. A device keeps its "
        "last reported addresses until it reports again (no look-back limit).",
    ),
    "DeviceFromIP": (
        "provided",
        "over DeviceNetworkInfo: the devices whose adapters' latest report at or before the "
        "given time lists the IP address (latest overall without a time), as columns IP, "
        "DeviceId. Both `DeviceFromIP(ip[, time])` and `T | invoke DeviceFromIP([time])` (T "
        "has an IP column) work. Several devices can hold one address (DHCP reuse): all are "
        "returned.",
    ),
    "FileProfile": (
        "refused",
        f"{_NO_OFFLINE}: it enriches file hashes with Microsoft's global file prevalence, "
        "first/last seen, signer and threat names, which only Microsoft's cloud has",
    ),
    "SeenBy": (
        "refused",
        f"{_NO_OFFLINE}: it lists the onboarded devices that discovered a device through "
        "device discovery, and no exported table records which device saw which",
    ),
    "GetAnomalousBehaviorsAbout": (
        "refused",
        f"{_NO_OFFLINE} reliably: it matches UEBA insight objects whose structure Microsoft "
        "does not publish precisely enough to reproduce",
    ),
    "GetAnomalousBehaviorsByKind": (
        "refused",
        f"{_NO_OFFLINE} reliably: it filters on UEBA insight objects whose structure is not "
        "published precisely enough to reproduce",
    ),
    "GetAnomalousBehaviorsByValue": (
        "refused",
        f"{_NO_OFFLINE} reliably: it filters on UEBA insight objects whose structure is not "
        "published precisely enough to reproduce",
    ),
    "GetFirstSeenBehaviors": (
        "refused",
        f"{_NO_OFFLINE} reliably: 'first seen' is a UEBA insight computed in the cloud",
    ),
    "GetHighVolumeAnomalyBehaviors": (
        "refused",
        f"{_NO_OFFLINE} reliably: the volume anomaly is a UEBA insight computed in the cloud",
    ),
    "GetUncommonValueBehaviors": (
        "refused",
        f"{_NO_OFFLINE} reliably: 'uncommon value' is a UEBA insight computed in the cloud",
    ),
    "_GetWatchlist": (
        "refused",
        "reads a Microsoft Sentinel watchlist, which lives in the workspace and not in the "
        "exported logs; export it and load it as a table instead",
    ),
    "_GetWatchlistAlias": (
        "refused",
        "lists the Microsoft Sentinel watchlists of a workspace, which are not in the "
        "exported logs",
    ),
}


def refusal_reason(name: str) -> str | None:
    """Why the Defender/Sentinel built-in ``name`` is refused, or None if it is not one we
    refuse. KQL function names are case-sensitive, and so is this lookup."""
    entry = BUILTINS.get(name)
    if entry is None or entry[0] != "refused":
        return None
    return entry[1]
