"""Flattening Windows events in EVTX JSON form to Sigma field names: known shapes give the
expected fields, and no input shape makes it raise."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from defensemap.logs.flatten import RESERVED_KEYS, flatten_event, is_evtx_json

SYSMON_1 = {
    "Event": {
        "#attributes": {"xmlns": "http://schemas.microsoft.com/win/2004/08/events/event"},
        "System": {
            "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon", "Guid": "5770385F"}},
            "EventID": 1,
            "Version": 5,
            "Level": 4,
            "Task": 1,
            "Opcode": 0,
            "Keywords": "0x8000000000000000",
            "TimeCreated": {"#attributes": {"SystemTime": "2025-12-10T04:47:28.250802Z"}},
            "EventRecordID": 18580,
            "Correlation": None,
            "Execution": {"#attributes": {"ProcessID": 3208, "ThreadID": 1724}},
            "Channel": "Microsoft-Windows-Sysmon/Operational",
            "Computer": "host1",
            "Security": {"#attributes": {"UserID": "S-1-5-18"}},
        },
        "EventData": {
            "ProcessId": 8924,
            "Image": "C:\\Windows\\System32\\bitsadmin.exe",
            "CommandLine": "bitsadmin /transfer n https://example.org/a.dll C:\\a.dll",
            "ParentImage": "C:\\Windows\\explorer.exe",
            "User": "host1\\alice",
        },
    }
}

SCALAR = (type(None), str, int, float, bool)


def test_sysmon_process_creation_gives_sigma_field_names() -> None:
    flat = flatten_event(SYSMON_1)
    assert flat["EventID"] == 1
    assert flat["Channel"] == "Microsoft-Windows-Sysmon/Operational"
    assert flat["Provider_Name"] == "Microsoft-Windows-Sysmon"
    assert flat["Provider_Guid"] == "5770385F"
    assert flat["Computer"] == "host1"
    assert flat["TimeCreated"] == "2025-12-10T04:47:28.250802Z"
    assert flat["EventRecordID"] == 18580
    assert flat["Level"] == 4
    assert flat["Task"] == 1
    assert flat["Keywords"] == "0x8000000000000000"
    assert flat["ThreadID"] == 1724
    assert flat["UserID"] == "S-1-5-18"
    assert flat["Image"].endswith("bitsadmin.exe")
    assert flat["CommandLine"].startswith("bitsadmin")
    assert flat["ParentImage"] == "C:\\Windows\\explorer.exe"
    assert flat["User"] == "host1\\alice"
    # Sysmon's ProcessId is the event's; the logging process's id moves aside
    assert flat["ProcessId"] == 8924
    assert flat["System_ProcessID"] == 3208
    assert "Correlation" not in flat


def test_event_id_with_qualifiers_and_as_text() -> None:
    record = {
        "Event": {
            "System": {
                "EventID": {"#attributes": {"Qualifiers": 16384}, "#text": 7036},
                "Channel": "System",
            }
        }
    }
    flat = flatten_event(record)
    assert flat["EventID"] == 7036
    assert flat["Qualifiers"] == 16384
    assert flatten_event({"Event": {"System": {"EventID": " 4624 "}}})["EventID"] == 4624


def test_event_id_that_is_not_a_number_is_kept_raw() -> None:
    flat = flatten_event({"Event": {"System": {"EventID": "abc"}}})
    assert flat["EventID"] is None
    assert flat["EventID_raw"] == "abc"
    assert flatten_event({"Event": {"System": {"EventID": True}}})["EventID"] is None
    assert flatten_event({"Event": {"System": {"EventID": 2**70}}})["EventID"] is None


def test_event_data_as_a_list_of_named_data_elements() -> None:
    record = {
        "Event": {
            "System": {"EventID": 4688, "Channel": "Security"},
            "EventData": {
                "Data": [
                    {"#attributes": {"Name": "NewProcessName"}, "#text": "C:\\x.exe"},
                    {"#attributes": {"Name": "CommandLine"}, "#text": "x.exe /q"},
                    {"#attributes": {"Name": "Empty"}},
                ]
            },
        }
    }
    flat = flatten_event(record)
    assert flat["NewProcessName"] == "C:\\x.exe"
    assert flat["CommandLine"] == "x.exe /q"
    assert "Empty" in flat


def test_single_named_data_element() -> None:
    record = {
        "Event": {"System": {}, "EventData": {"Data": {"#attributes": {"Name": "A"}, "#text": "1"}}}
    }
    assert flatten_event(record)["A"] == "1"


def test_unnamed_data_values_are_collected() -> None:
    one = {"Event": {"System": {}, "EventData": {"Data": {"#text": "only"}}}}
    assert flatten_event(one)["Data"] == "only"
    many = {"Event": {"System": {}, "EventData": {"Data": ["a", {"#text": "b"}]}}}
    assert json.loads(flatten_event(many)["Data"]) == ["a", "b"]
    texts = {"Event": {"System": {}, "EventData": {"Data": {"#text": ["a", "b"]}}}}
    assert json.loads(flatten_event(texts)["Data"]) == ["a", "b"]


def test_user_data_leaves_are_flattened() -> None:
    record = {
        "Event": {
            "System": {"EventID": 104, "Channel": "System"},
            "UserData": {
                "LogFileCleared": {
                    "#attributes": {"xmlns": "http://manifests.microsoft.com/win/2004/08"},
                    "SubjectUserName": "bob",
                    "SubjectDomainName": "CORP",
                    "Channel": "Security",
                    "Nested": {"Deep": {"#text": "v"}},
                }
            },
        }
    }
    flat = flatten_event(record)
    assert flat["SubjectUserName"] == "bob"
    assert flat["SubjectDomainName"] == "CORP"
    # the header Channel is what Sigma matches on; the event's own moves aside
    assert flat["Channel"] == "System"
    assert flat["UserData_Channel"] == "Security"
    assert flat["Deep"] == "v"
    assert not any(k.startswith("xmlns") for k in flat)


def test_structured_values_become_json_text() -> None:
    record = {"Event": {"System": {"EventID": 1}, "EventData": {"List": [1, 2], "Obj": {"a": 1}}}}
    flat = flatten_event(record)
    assert json.loads(flat["List"]) == [1, 2]
    assert json.loads(flat["Obj"]) == {"a": 1}


def test_keys_that_clash_ignoring_case_get_suffixes() -> None:
    record = {"Event": {"System": {}, "EventData": {"Image": "a", "image": "b", "IMAGE": "c"}}}
    flat = flatten_event(record)
    assert [flat[k] for k in ("Image", "image_2", "IMAGE_3")] == ["a", "b", "c"]


def test_provenance_names_are_never_produced() -> None:
    record = {"Event": {"System": {}, "EventData": {"_dm_source": "x", "_DM_RECORD": 1}}}
    flat = flatten_event(record)
    assert not {k.casefold() for k in flat} & {k.casefold() for k in RESERVED_KEYS}
    assert flat["_dm_source_2"] == "x"


def test_security_null_and_rendering_info() -> None:
    record = {
        "Event": {
            "System": {
                "EventID": 4648,
                "Security": None,
                "Correlation": {"#attributes": {"ActivityID": "C9"}},
            },
            "EventData": {"SubjectUserName": "x"},
            "RenderingInfo": {"Message": "A logon was attempted", "Level": "Information"},
        }
    }
    flat = flatten_event(record)
    assert "UserID" not in flat
    assert flat["ActivityID"] == "C9"
    assert flat["RenderingInfo_Message"] == "A logon was attempted"


def test_odd_shapes() -> None:
    assert flatten_event([]) == {}  # type: ignore[arg-type]
    assert flatten_event("x") == {}  # type: ignore[arg-type]
    assert flatten_event({}) == {}
    assert flatten_event({"Event": None}) == {"Event": None}
    assert flatten_event({"Event": {"System": "text"}}) == {"System": "text"}
    assert flatten_event({"Event": {"System": {"EventID": 1}, "EventData": "raw"}})["Data"] == "raw"
    assert flatten_event({"Event": {"System": {}, "EventData": {"": 1}}}) == {"_": 1}
    assert flatten_event({"a": {"b": 1}, "c": [1]}) == {"b": 1, "c": "[1]"}


def test_is_evtx_json() -> None:
    assert is_evtx_json(SYSMON_1)
    assert not is_evtx_json({"Event": {"EventData": {}}})
    assert not is_evtx_json({"Event": "x"})
    assert not is_evtx_json([SYSMON_1])
    assert not is_evtx_json({"Timestamp": "2024-01-01"})


# ---------------------------------------------------------------------------- properties

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=30,
)
SPECIAL_KEYS = st.sampled_from(
    ["#attributes", "#text", "Data", "Name", "EventID", "System", "EventData", "UserData",
     "Provider", "TimeCreated", "Execution", "Security", "Channel", "ProcessID", "ProcessId",
     "_dm_source", "", "xmlns"]
)  # fmt: skip
EVENTISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(SPECIAL_KEYS | st.text(max_size=6), children, max_size=5)
    ),
    max_leaves=40,
)


def _check_row(flat: dict[str, Any]) -> None:
    assert isinstance(flat, dict)
    assert all(isinstance(k, str) and k for k in flat)
    folded = [k.casefold() for k in flat]
    assert len(folded) == len(set(folded)), "keys must be unique ignoring case"
    assert not set(folded) & {k.casefold() for k in RESERVED_KEYS}
    assert all(isinstance(v, SCALAR) for v in flat.values())
    if "EventID" in flat:
        assert flat["EventID"] is None or type(flat["EventID"]) is int


@given(JSON)
@settings(max_examples=300)
def test_arbitrary_json_never_raises(record: Any) -> None:
    _check_row(flatten_event(record))
    is_evtx_json(record)


@given(EVENTISH, EVENTISH, EVENTISH)
@settings(max_examples=300)
def test_arbitrary_event_shapes_never_raise(system: Any, data: Any, user: Any) -> None:
    record = {"Event": {"System": system, "EventData": data, "UserData": user}}
    _check_row(flatten_event(record))


NAMES = st.from_regex(r"F[A-Za-z0-9]{0,10}", fullmatch=True)
VALUES = st.none() | st.text(max_size=20) | st.integers(-(2**63), 2**63 - 1) | st.booleans()


@given(
    event_id=st.integers(0, 65535),
    channel=st.text(min_size=1, max_size=30),
    provider=st.text(max_size=30),
    data=st.dictionaries(NAMES, VALUES, max_size=10).filter(
        lambda d: len({k.casefold() for k in d}) == len(d)
    ),
    as_list=st.booleans(),
)
def test_known_shapes_give_expected_fields(
    event_id: int, channel: str, provider: str, data: dict[str, Any], as_list: bool
) -> None:
    event_data: Any = data
    if as_list:
        event_data = {"Data": [{"#attributes": {"Name": k}, "#text": v} for k, v in data.items()]}
    record = {
        "Event": {
            "System": {
                "Provider": {"#attributes": {"Name": provider}},
                "EventID": event_id if event_id % 2 else {"#text": str(event_id)},
                "Channel": channel,
                "Computer": "pc",
                "TimeCreated": {"#attributes": {"SystemTime": "2024-01-01T00:00:00Z"}},
            },
            "EventData": event_data,
        }
    }
    flat = flatten_event(record)
    _check_row(flat)
    assert flat["EventID"] == event_id
    assert flat["Channel"] == channel
    assert flat["Provider_Name"] == provider
    assert flat["Computer"] == "pc"
    assert flat["TimeCreated"] == "2024-01-01T00:00:00Z"
    for key, value in data.items():
        assert flat[key] == value
