"""Checks of numbers that come from people: form fields, HTTP API arguments, the Python API.

One rule everywhere (:func:`whole_number`): a whole number may arrive as an int, as a float
with nothing after the point (Gradio's Number sends 4.0) or as text of either ("7", " 7 ");
anything else (8.7, "x", True, NaN) is refused with a message naming the field and the range,
never rounded or truncated.
"""
from __future__ import annotations

MAX_SEED = 2 ** 31 - 1    # seeds are whole numbers in [0, MAX_SEED] in every interface
AUTO_IDENTITY = "auto"  # the identity asked for as "matched from the voice", in every interface
SHOWN_CHARACTERS = 40   # a refused value is quoted up to this length (a 1 MB string is not echoed back)


def shown(value) -> str:
    """``repr(value)``, cut to :data:`SHOWN_CHARACTERS` for messages."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARACTERS else text[:SHOWN_CHARACTERS - 3] + "..."


def matched_from_voice(identity) -> bool:
    """Whether ``identity`` asks for the identity matched from the voice (nothing or "auto")."""
    return identity in (None, "", AUTO_IDENTITY)


def whole_number(value, what: str, low: int, high: int, missing: str | None = None) -> int:
    """``value`` as an int in [low, high], or ``ValueError`` with a plain message.

    ``what`` names the field in the message ("the seed"); ``missing`` replaces the message
    for an empty field (None or blank text).
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError(missing or f"Enter {what} (a whole number from {low} to {high}).")
    label = what[:1].upper() + what[1:] if what.startswith("the ") else what   # identifiers keep their case
    refused = ValueError(f"{label} must be a whole number between {low} and {high}, not {shown(value)}.")
    if isinstance(value, bool):
        raise refused
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError, OverflowError):
        raise refused from None
    if not number.is_integer() or not low <= number <= high:
        raise refused
    return int(number)
