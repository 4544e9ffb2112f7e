"""Turn pydantic validation errors into a JSON pointer and a user-facing message."""

from __future__ import annotations

from pydantic import ValidationError


def pointer_token(part: object) -> str:
    """One JSON pointer reference token (RFC 6901: ``~`` -> ``~0``, ``/`` -> ``~1``)."""
    return str(part).replace("~", "~0").replace("/", "~1")


def first_problem(exc: ValidationError) -> tuple[str, str]:
    """The first error as (pointer relative to the validated value, message).

    The pointer has no trailing ``/`` when the value itself is wrong (``/metadata``, not
    ``/metadata/``, which would name a key ""). Only the message's first letter is lowered:
    the rest may quote allowed values, which are case-sensitive.
    """
    err = exc.errors()[0]
    where = "".join(f"/{pointer_token(part)}" for part in err["loc"])
    if err["type"] == "missing":
        return where, f"required field '{err['loc'][-1]}' is missing"
    message = err["msg"][:1].lower() + err["msg"][1:]
    if err["loc"]:
        message = f"field '{err['loc'][-1]}': {message}"
    return where, message
