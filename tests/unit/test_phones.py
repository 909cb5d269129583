"""Phone numbers in E.164, and matching an event's number to an organization's imported numbers."""

from __future__ import annotations

import uuid

import pytest

from service.core.phones import PhoneBook, to_e164
from tests.support.events import ORG, OTHER_ORG

PHONE_ID = uuid.UUID("2b3c4d5e-6f70-4819-a2b3-c4d5e6f70819")
LONDON_ID = uuid.UUID("8f9e0d1c-2b3a-4c5d-9e6f-7a8b9c0d1e2f")
US_BOOK = PhoneBook(default_region="US", ids={(ORG, "+12125551234"): PHONE_ID})
GB_BOOK = PhoneBook(default_region="GB", ids={(ORG, "+442079460000"): LONDON_ID})

NEW_YORK_FORMS = [
    "+12125551234",
    "(212) 555-1234",
    "212.555.1234",
    "+1 212 555 1234",
    "1-212-555-1234",
    "2125551234",
]


@pytest.mark.parametrize("raw", NEW_YORK_FORMS)
def test_us_numbers_in_any_format_read_as_one_e164(raw: str) -> None:
    assert to_e164(raw, "US") == "+12125551234"


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("020 7946 0000", "GB", "+442079460000"),
        ("+44 20 7946 0000", "US", "+442079460000"),
        ("+1 212 555 1234", "GB", "+12125551234"),
        ("(212) 555-1234", "GB", "+442125551234"),
    ],
)
def test_numbers_without_a_country_code_are_the_default_regions(raw: str, region: str, expected: str) -> None:
    assert to_e164(raw, region) == expected


@pytest.mark.parametrize("raw", [None, "", "abc", "123", "020 7946 0000 0000 0000"])
@pytest.mark.parametrize("region", ["US", "GB"])
def test_what_cannot_be_a_phone_number_is_none(raw: str | None, region: str) -> None:
    assert to_e164(raw, region) is None


@pytest.mark.parametrize("raw", NEW_YORK_FORMS)
def test_the_phone_book_matches_any_format_of_an_organizations_number(raw: str) -> None:
    assert US_BOOK.id_for(ORG, raw) == PHONE_ID


@pytest.mark.parametrize(
    ("org_id", "raw"),
    [
        pytest.param(OTHER_ORG, "+12125551234", id="another-org"),
        pytest.param(OTHER_ORG, "(212) 555-1234", id="another-org-formatted"),
        pytest.param(ORG, "+12125559999", id="unknown-number"),
        pytest.param(ORG, "abc", id="garbage"),
        pytest.param(ORG, "", id="empty"),
        pytest.param(ORG, None, id="none"),
    ],
)
def test_the_phone_book_has_no_id_without_a_match(org_id: uuid.UUID, raw: str | None) -> None:
    assert US_BOOK.id_for(org_id, raw) is None


@pytest.mark.parametrize(
    ("book", "raw", "expected"),
    [
        pytest.param(GB_BOOK, "020 7946 0000", LONDON_ID, id="gb-national"),
        pytest.param(GB_BOOK, "+44 20 7946 0000", LONDON_ID, id="gb-international"),
        pytest.param(US_BOOK, "020 7946 0000", None, id="gb-national-read-as-us"),
        pytest.param(GB_BOOK, "(212) 555-1234", None, id="us-national-read-as-gb"),
    ],
)
def test_the_phone_book_reads_national_numbers_in_its_default_region(
    book: PhoneBook, raw: str, expected: uuid.UUID | None
) -> None:
    assert book.id_for(ORG, raw) == expected


def test_an_empty_phone_book_matches_nothing() -> None:
    assert PhoneBook(default_region="US").id_for(ORG, "+12125551234") is None
