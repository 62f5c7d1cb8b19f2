"""Loading a shop from a merchant's file: transactions CSV and Shopify's Orders export."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devstore.store import CUSTOMER_ID_BASE, SHOPIFY_EXPORT_COLUMNS, DataFileError, ShopStore


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


TRANSACTIONS = """customer_id,order_id,processed_at,amount,currency,test,cancelled_at,refunded_amount,refunded_at
501,9001,2026-01-05T10:00:00Z,120.50,EUR,,,,
501,9002,2026-03-01 09:30:00,80.00,EUR,,,20.00,2026-03-04T08:00:00Z
502,9003,2026-02-10,15.25,EUR,true,,,
,9004,2026-02-11T12:00:00+01:00,42.00,EUR,,,,
503,9005,2026-04-01T00:00:00Z,60.00,EUR,,2026-04-02T00:00:00Z,,
"""


def test_transactions_csv_keeps_ids_and_amounts(tmp_path: Path) -> None:
    path = write(tmp_path, "tx.csv", TRANSACTIONS)
    store = ShopStore.from_file(path, name="fileshop", iana_timezone="Europe/Berlin", now=1_790_000_000)
    truth = store.ground_truth()
    assert truth["shop"]["currency"] == "EUR"  # from the file
    assert truth["shop"]["iana_timezone"] == "Europe/Berlin"
    orders = {o["shopify_id"]: o for o in truth["orders"]}
    assert set(orders) == {9001, 9002, 9003, 9004, 9005}
    assert orders[9001]["customer_shopify_id"] == 501
    assert orders[9001]["total"] == Decimal("120.50")
    assert orders[9001]["processed_at"] == datetime(2026, 1, 5, 10, tzinfo=UTC)
    # A naive time is in the shop's zone? No: transactions default to UTC unless an offset is given.
    assert orders[9002]["processed_at"] == datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    assert orders[9004]["processed_at"] == datetime(2026, 2, 11, 11, tzinfo=UTC)
    assert orders[9004]["customer_shopify_id"] is None
    assert orders[9003]["test"] is True
    assert orders[9002]["total_refunded"] == Decimal("20.00")
    assert orders[9002]["current_total"] == Decimal("60.00")
    assert orders[9002]["financial_status"] == "PARTIALLY_REFUNDED"
    assert orders[9005]["cancelled_at"] == datetime(2026, 4, 2, tzinfo=UTC)
    assert orders[9005]["financial_status"] == "VOIDED"
    (refund,) = truth["refunds"]
    assert refund["order_shopify_id"] == 9002
    assert refund["created_at"] == datetime(2026, 3, 4, 8, tzinfo=UTC)
    customers = {c["shopify_id"]: c for c in truth["customers"]}
    assert set(customers) == {501, 502, 503}
    assert customers[501]["number_of_orders"] == 2
    assert customers[501]["amount_spent"] == Decimal("180.50")
    assert customers[502]["number_of_orders"] == 0  # its only order is a test order
    assert customers[503]["amount_spent"] == Decimal("0.00")  # voided


def test_transactions_currency_option_wins(tmp_path: Path) -> None:
    path = write(tmp_path, "tx.csv", "customer_id,order_id,processed_at,amount\n1,2,2026-01-01,10\n")
    store = ShopStore.from_file(path, name="plain", currency="JPY")
    truth = store.ground_truth()
    assert truth["shop"]["currency"] == "JPY"
    assert truth["shop"]["iana_timezone"] == "UTC"
    assert truth["orders"][0]["total"] == Decimal("10")


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("customer_id,order_id,processed_at,amount\n1,2,2026-01-01,10\n1,3,yesterday,5\n", 3, "processed_at"),
        ("customer_id,order_id,processed_at,amount\n1,2,2026-01-01,10\n1,3,2026-01-02,ten\n", 3, "amount"),
        ("customer_id,order_id,processed_at,amount\n1,2,2026-01-01,10\n\n1,2,2026-01-02,5\n", 4, "appears twice"),
        ("customer_id,order_id,processed_at,amount\nx,2,2026-01-01,10\n", 2, "customer_id"),
        ("customer_id,order_id,processed_at,amount\n1,2,2026-01-01,-4\n", 2, "non-negative"),
        ("customer_id,order_id,amount\n1,2,10\n", 1, "processed_at"),
        (
            "customer_id,order_id,processed_at,amount,refunded_amount\n1,2,2026-01-01,10,11\n",
            2,
            "larger than amount",
        ),
    ],
)
def test_bad_rows_report_their_line(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    path = write(tmp_path, "bad.csv", text)
    with pytest.raises(DataFileError) as exc:
        ShopStore.from_file(path, name="bad")
    assert exc.value.line == line
    assert fragment in str(exc.value)
    assert f"line {line}" in str(exc.value)


def export_row(**values: str) -> str:
    return ",".join(f'"{values.get(col, "")}"' for col in SHOPIFY_EXPORT_COLUMNS)


def test_shopify_orders_export(tmp_path: Path) -> None:
    header = ",".join(SHOPIFY_EXPORT_COLUMNS)
    assert header.startswith("Name,Email,Financial Status,Paid at,")
    rows = [
        header,
        export_row(**{
            "Name": "#1050", "Email": "Anna@Example.com", "Financial Status": "paid",
            "Paid at": "2026-05-01 10:00:00 +0200", "Currency": "GBP", "Subtotal": "100.90", "Shipping": "5.00",
            "Total": "105.90", "Created at": "2026-05-01 09:59:00 +0200", "Lineitem quantity": "1",
            "Lineitem name": "Tea", "Billing Name": "Anna Jansen", "Id": "4500001", "Tags": "vip, tea",
        }),
        # Second line item of the same order: order-level fields are empty.
        export_row(**{"Name": "#1050", "Email": "anna@example.com", "Lineitem quantity": "2", "Lineitem name": "Cup"}),
        export_row(**{
            "Name": "#1051", "Email": "anna@example.com", "Financial Status": "partially_refunded",
            "Paid at": "2026-06-01 10:00:00 +0200", "Currency": "GBP", "Subtotal": "40.00", "Total": "40.00",
            "Created at": "2026-06-01 10:00:00 +0200", "Refunded Amount": "15.00", "Id": "4500002",
        }),
        export_row(**{
            "Name": "#1052", "Email": "", "Financial Status": "paid", "Currency": "GBP", "Subtotal": "9.99",
            "Total": "9.99", "Created at": "2026-06-02 10:00:00 +0000", "Id": "4500003",
        }),
    ]
    path = write(tmp_path, "orders_export.csv", "\n".join(rows) + "\n")
    store = ShopStore.from_file(path, name="exported", iana_timezone="Europe/London")
    truth = store.ground_truth()
    assert truth["shop"]["currency"] == "GBP"
    orders = {o["shopify_id"]: o for o in truth["orders"]}
    assert set(orders) == {4500001, 4500002, 4500003}
    first = orders[4500001]
    assert first["name"] == "#1050"
    assert first["total"] == Decimal("105.90")
    assert first["subtotal"] == Decimal("100.90")
    assert first["created_at"] == datetime(2026, 5, 1, 7, 59, tzinfo=UTC)
    assert first["processed_at"] == datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
    assert first["tags"] == ["vip", "tea"]
    assert orders[4500002]["total_refunded"] == Decimal("15.00")
    assert orders[4500003]["customer_shopify_id"] is None
    # Both of Anna's orders belong to one customer (the export keys customers by email).
    assert first["customer_shopify_id"] == orders[4500002]["customer_shopify_id"] is not None
    (anna,) = truth["customers"]
    assert anna["number_of_orders"] == 2
    assert anna["amount_spent"] == Decimal("130.90")
    # CONTRACT.md: the id is derived from the lower-cased email, so a reload gives the same id.
    digest = hashlib.sha256(b"anna@example.com").hexdigest()
    assert anna["shopify_id"] == CUSTOMER_ID_BASE + int(digest[:10], 16) % 10**11
    # The export has no refund date: the refund is dated at the order's latest known time.
    (refund,) = truth["refunds"]
    assert refund["order_shopify_id"] == 4500002
    assert refund["created_at"] == datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
    assert refund["amount"] == refund["subtotal_amount"] == Decimal("15.00")


def test_shopify_export_bad_row_line_number(tmp_path: Path) -> None:
    header = ",".join(SHOPIFY_EXPORT_COLUMNS)
    good = export_row(**{"Name": "#1", "Currency": "USD", "Subtotal": "1", "Total": "1",
                         "Created at": "2026-01-01 00:00:00 +0000", "Id": "11"})
    bad = export_row(**{"Name": "#2", "Currency": "USD", "Subtotal": "1", "Total": "abc",
                        "Created at": "2026-01-01 00:00:00 +0000", "Id": "12"})
    path = write(tmp_path, "orders_export.csv", "\n".join([header, good, bad]) + "\n")
    with pytest.raises(DataFileError) as exc:
        ShopStore.from_file(path, name="bad-export")
    assert exc.value.line == 3
    assert "Total" in str(exc.value)


def test_file_shops_default_to_utc_and_the_files_currency(tmp_path: Path) -> None:
    """Issue 3: a file-loaded shop takes its zone and currency from options, default UTC and the file's."""
    from devstore.testing import ShopSpec

    path = write(tmp_path, "tx.csv", TRANSACTIONS)
    loaded = ShopSpec(name="fromfile", data_file=str(path), now=1_790_000_000).build()
    assert (loaded.iana_timezone, loaded.currency) == ("UTC", "EUR")
    chosen = ShopSpec(name="chosen", data_file=str(path), iana_timezone="Asia/Tokyo", now=1_790_000_000).build()
    assert chosen.iana_timezone == "Asia/Tokyo"
    generated = ShopSpec(name="made", customers=5, months=1, now=1_790_000_000).build()
    assert generated.iana_timezone == "America/New_York"  # generated shops never sit in UTC


# Issue 14: every encoding and size case names the file, the line and the problem (no traceback).
TX_HEAD = "customer_id,order_id,processed_at,amount,currency,note\n"
TX_GOOD = "1,2,2026-01-01,10,EUR,plain\n"


def export_text(*rows: dict[str, str]) -> str:
    base = {"Name": "#1", "Currency": "USD", "Subtotal": "1", "Total": "1", "Created at": "2026-01-01 00:00:00 +0000",
            "Id": "11"}
    lines = [",".join(SHOPIFY_EXPORT_COLUMNS)]
    for i, row in enumerate(rows):
        lines.append(export_row(**{**base, "Name": f"#{i + 1}", "Id": str(11 + i), **row}))
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("data", "line", "fragment"),
    [
        ((TX_HEAD + TX_GOOD + "1,3,2026-01-02,5,EUR,Café\n").encode("latin-1"), 3,
         "byte 0xe9 at column 25 is not UTF-8"),
        ((TX_HEAD + TX_GOOD).encode("utf-16"), 1, "UTF-16"),
        ((TX_HEAD + TX_GOOD).encode("utf-16-be"), 1, "NUL byte (is the file UTF-16?)"),
        ((TX_HEAD + TX_GOOD).encode("utf-16-le"), 1, "NUL byte (is the file UTF-16?)"),
        ((TX_HEAD + TX_GOOD + "1,3,2026-01-02,1e30,EUR,x\n").encode(), 3,
         "amount: must be less than 1,000,000,000,000"),
        ((TX_HEAD + TX_GOOD + "1,3,2026-01-02,5,EUR," + "x" * 1_000_000 + "\n").encode(), 3,
         "a field is longer than 131,072 characters"),
        ((TX_HEAD + "1,3,2026-01-02," + "9" * 1_000_000 + ",EUR,x\n").encode(), 2,
         "a field is longer than 131,072 characters"),
        (("customer_id,order_id,processed_at," + "a" * 1_000_000 + "\n").encode(), 1,
         "a field is longer than 131,072 characters"),
        ((TX_HEAD + "1,²,2026-01-02,5,EUR,x\n").encode(), 2, "order_id: not a positive integer id: '²'"),
        ((TX_HEAD + "1," + "7" * 5000 + ",2026-01-02,5,EUR,x\n").encode(), 2, "(5,000 characters)"),
        ((TX_HEAD + "1,3,0001-01-01T00:00:00+14:00,5,EUR,x\n").encode(), 2, "processed_at: not between 1970 and 9999"),
        ((TX_HEAD + "1,3,2026-01-02,1e999999999,EUR,x\n").encode(), 2, "amount: must be less than"),
        (export_text({}, {"Total": "1e30"}).encode(), 3, "Total: must be less than 1,000,000,000,000"),
        (export_text({}, {"Name": "#" + "1" * 30, "Id": ""}).encode(), 3, "Name: not a positive integer id"),
        (export_text({}, {"Tags": "t" * 1_000_000}).encode(), 3, "a field is longer than 131,072 characters"),
        (export_text({"Billing Name": "Zoë"}).encode("cp1252"), 2, "byte 0xeb"),
    ],
    ids=["latin-1", "utf-16-bom", "utf-16-be-no-bom", "utf-16-le-no-bom", "amount-1e30", "million-char-field",
         "million-digit-amount", "million-char-header", "superscript-id", "5000-digit-id", "year-1-with-offset",
         "amount-exponent-overflow", "export-total-1e30", "export-30-digit-name", "export-million-char-tags",
         "export-cp1252"],
)
def test_junk_files_name_the_file_line_and_problem(tmp_path: Path, data: bytes, line: int, fragment: str) -> None:
    path = tmp_path / "junk.csv"
    path.write_bytes(data)
    with pytest.raises(DataFileError) as exc:
        ShopStore.from_file(path, name="junk")
    assert exc.value.line == line
    assert fragment in exc.value.reason
    assert str(exc.value).startswith(f"{path}, line {line}: ")
    assert len(str(exc.value)) < 400  # a huge field is not copied into the message


# --- fuzzing: whatever the file holds, the loader builds a shop or raises DataFileError -----------------------

TX_COLUMNS = ["customer_id", "order_id", "processed_at", "amount", "currency", "test", "cancelled_at",
              "refunded_amount", "refunded_at"]
CELLS = st.one_of(
    st.sampled_from(["", "1", "9001", "0", "-5", "12.50", "1e30", "1e999999999", "NaN", "Infinity", "EUR", "usd",
                     "ÄÖÜ", "true", "2026-01-05T10:00:00Z", "2026-03-01 09:30:00", "2026-03-01 09:30:00 +0200",
                     "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2026-02-30", "#1001", "²",
                     "gid://shopify/Order/5", "9" * 25]),
    st.text(max_size=12),
    st.integers().map(str),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.datetimes().map(lambda d: d.isoformat()),
)


@st.composite
def csv_files(draw: st.DrawFn) -> bytes:
    """A transactions file or an orders export, its cells junk or near-valid, in a random encoding."""
    if draw(st.booleans()):
        header = draw(st.lists(st.sampled_from(TX_COLUMNS), min_size=3, max_size=9, unique=True))
    else:
        header = list(SHOPIFY_EXPORT_COLUMNS)
    rows = draw(st.lists(st.fixed_dictionaries({c: CELLS for c in header[:12]}), max_size=6))
    quote = draw(st.sampled_from(['"', ""]))
    lines = [",".join(header)] + [",".join(f"{quote}{row.get(c, '')}{quote}" for c in header) for row in rows]
    text = draw(st.sampled_from(["\n", "\r\n"])).join(lines)
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16", "utf-16-le"]))
    return text.encode(encoding, errors="replace")


@settings(max_examples=200, deadline=None)
@given(data=st.one_of(csv_files(), st.binary(max_size=400)))
def test_fuzz_the_file_loader_raises_only_data_file_errors(tmp_path_factory: pytest.TempPathFactory,
                                                          data: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "shop.csv"
    path.write_bytes(data)
    try:
        store = ShopStore.from_file(path, name="fuzz", now=1_790_000_000)
    except DataFileError as exc:
        problem: DataFileError | None = exc
    else:
        problem = None
        try:
            assert store.order_count() >= 1
        finally:
            store.close()
    if problem is not None:
        assert problem.path == str(path)
        assert problem.line >= 1
