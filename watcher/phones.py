"""Phone numbers as people write them in Kazakhstan, read into one international form.

``87011234567``, ``7011234567``, ``+7 (701) 123-45-67`` and ``8 701 123 45 67`` are all
``+77011234567``: the config stores that (E.164) form, people see ``+7 701 123 45 67``,
and logs and messages ``+7 701 *** ** 67``. Google's libphonenumber (the ``phonenumbers``
package) knows which numbers exist; it is imported only when a number is read.
"""

from __future__ import annotations

import re

# Where a number written without its country code is dialled from.
DEFAULT_REGION = "KZ"

EXAMPLE = "+7 7XX XXX XX XX or 8 7XX XXX XX XX"  # not a number: errors mask numbers


def normalise_number(text: str) -> str:
    """The E.164 form (``+77011234567``) of a number as written, or ``ValueError``.

    The error says what is wrong without repeating the number: it may end up in a log.
    """
    import phonenumbers

    written = text.strip()
    if not re.fullmatch(r"\+?[\d\s().\-]+", written):
        raise ValueError(f"expected a phone number such as {EXAMPLE}")
    try:
        number = phonenumbers.parse(written, DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        raise ValueError(f"expected a phone number such as {EXAMPLE}") from None
    if not phonenumbers.is_valid_number(number):
        reason = {
            phonenumbers.ValidationResult.TOO_SHORT: "it has too few digits",
            phonenumbers.ValidationResult.TOO_LONG: "it has too many digits",
            phonenumbers.ValidationResult.INVALID_LENGTH: "it has a wrong number of digits",
        }.get(phonenumbers.is_possible_number_with_reason(number), "no such number is in use")
        raise ValueError(f"expected a phone number such as {EXAMPLE}: {reason}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _kz_digits(number: str) -> str | None:
    """The 10 national digits of a +7 number in any of its written forms, else None."""
    digits = re.sub(r"\D", "", number)
    if number.strip().startswith("+"):
        return digits[1:] if len(digits) == 11 and digits[0] == "7" else None
    if len(digits) == 11 and digits[0] in "78":
        return digits[1:]
    if len(digits) == 10 and digits[0] == "7":
        return digits
    return None


def format_number(number: str) -> str:
    """``+77011234567`` -> ``+7 701 123 45 67``; other countries' numbers as written."""
    national = _kz_digits(number)
    if national is None:
        return number
    return f"+7 {national[:3]} {national[3:6]} {national[6:8]} {national[8:]}"


def mask_number(number: str) -> str:
    """``+77011234567`` (or any local form) -> ``+7 701 *** ** 67``: enough to recognise,
    not to dial. Other countries' numbers keep their first three and last two digits."""
    national = _kz_digits(number)
    if national is not None:
        return f"+7 {national[:3]} *** ** {national[-2:]}"
    digits = re.sub(r"\D", "", number)
    if len(digits) < 7:
        return "***"
    prefix = "+" if number.strip().startswith("+") else ""
    return f"{prefix}{digits[:3]} *** ** {digits[-2:]}"
