"""Live trading for a ShopStore: events change the shop and return the webhooks Shopify would send.

Payloads are REST-shaped as in Shopify's webhook reference (API 2026-10,
https://shopify.dev/docs/api/webhooks?reference=toml): snake_case keys, numeric ``id``,
``admin_graphql_api_id``, money as strings with the currency's full exponent (the
``refund_line_items[].subtotal`` number is a number, as in the docs' example), times in the
shop's zone with its offset. Only the fields Tenure reads plus their obvious neighbours are
present, under Shopify's names and types: every key is one the reference's sample payload has
(pinned by tests/devstore/test_doc_examples.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from devstore.store import (
    CUSTOMER_COLUMNS,
    CUSTOMER_TAGS,
    FIRST_NAMES,
    LAST_NAMES,
    LINE_ITEM_ID_BASE,
    ORDER_COLUMNS,
    ORDER_TAGS,
    PRESENTMENT_CHOICES,
    REFUND_LINE_ITEM_ID_OFFSET,
    TRANSACTION_ID_BASE,
    customer_gid,
    iso_local,
    minor_units,
    money_rest,
    order_gid,
    presentment_amount,
    rate_between,
    refund_gid,
    split_tags,
)

if TYPE_CHECKING:
    from devstore.store import ShopStore

Event = tuple[str, dict[str, Any]]

# (kind, weight)
EVENT_WEIGHTS = (
    ("order_existing_customer", 30),
    ("order_new_customer", 14),
    ("order_guest", 5),
    ("refund", 12),
    ("cancel", 6),
    ("edit", 10),
    ("customer_update", 10),
    ("customer_create", 5),
    ("customer_delete", 4),
    ("order_delete", 4),
)


def _pick(rng: Any, n: int) -> int:
    return min(int(rng.random() * n), n - 1)


def _kind(rng: Any) -> str:
    total = sum(w for _, w in EVENT_WEIGHTS)
    x = rng.random() * total
    for kind, weight in EVENT_WEIGHTS:
        x -= weight
        if x < 0:
            return kind
    return EVENT_WEIGHTS[-1][0]


def live_step(*, store: ShopStore, n: int, rng: Any) -> list[Event]:
    events: list[Event] = []
    for _ in range(n):
        kind = _kind(rng)
        handler = HANDLERS[kind]
        produced = handler(store, rng)
        if not produced:
            produced = _order_create(store, rng, customer="existing")
        events.extend(produced)
    return events


# ---------------------------------------------------------------------------------------------
# Payloads


def money_set(store: ShopStore, amount: int, pres_currency: str, rate: float) -> dict[str, Any]:
    pres = presentment_amount(amount, rate, store.currency, pres_currency)
    return {
        "shop_money": {"amount": money_rest(amount, store.currency), "currency_code": store.currency},
        "presentment_money": {"amount": money_rest(pres, pres_currency), "currency_code": pres_currency},
    }


def customer_payload(store: ShopStore, c: dict[str, Any]) -> dict[str, Any]:
    tz = store.tz
    address = None
    if c.get("city"):
        address = {
            "id": c["id"] + 11,
            "customer_id": c["id"],
            "first_name": c["first_name"],
            "last_name": c["last_name"],
            "company": None,
            "address1": "1 Example Street",
            "address2": None,
            "city": c["city"],
            "province": None,
            "country": c["country_code"],
            "zip": "1010",
            "phone": c["phone"],
            "name": f"{c['first_name'] or ''} {c['last_name'] or ''}".strip(),
            "province_code": None,
            "country_code": c["country_code"],
            "country_name": c["country_code"],
            "default": True,
        }
    # Since API 2025-01 customer webhooks carry no `tags` and no marketing consent (the
    # customer.tags_added/_removed and *_marketing_consent topics do); the app keeps the tags it
    # holds when a payload has none.
    return {
        "id": c["id"],
        "created_at": iso_local(c["created_at"], tz),
        "updated_at": iso_local(c["updated_at"], tz),
        "first_name": c["first_name"],
        "last_name": c["last_name"],
        "state": "enabled" if c["number_of_orders"] else "disabled",
        "note": None,
        "verified_email": True,
        "multipass_identifier": None,
        "tax_exempt": False,
        "email": c["email"],
        "phone": c["phone"],
        "currency": store.currency,
        "addresses": [address] if address else [],
        "tax_exemptions": [],
        "admin_graphql_api_id": customer_gid(c["id"]),
        "default_address": address,
    }


# The order payload's `customer` is the customer without `addresses` (and, as there, no tags).
ORDER_CUSTOMER_DROPS = ("addresses", "tags")


def _line_item_id(order_id: int) -> int:
    return LINE_ITEM_ID_BASE + order_id % 10**12


def refund_payload(store: ShopStore, r: dict[str, Any], order: dict[str, Any]) -> dict[str, Any]:
    tz = store.tz
    pres, rate = order["presentment_currency"], order["rate"]
    sub = r["subtotal"]
    scale = minor_units(store.currency)
    line_items = []
    if sub > 0:
        line_items.append(
            {
                "id": r["id"] + REFUND_LINE_ITEM_ID_OFFSET,
                "line_item_id": _line_item_id(order["id"]),
                "location_id": None,
                "quantity": 1,
                "restock_type": "no_restock",
                "subtotal": sub / scale,
                "subtotal_set": money_set(store, sub, pres, rate),
                "total_tax": 0.0,
                "total_tax_set": money_set(store, 0, pres, rate),
            }
        )
    shipping = r["amount"] - sub
    return {
        "id": r["id"],
        "admin_graphql_api_id": refund_gid(r["id"]),
        "order_id": order["id"],
        "created_at": iso_local(r["created_at"], tz),
        "processed_at": iso_local(r["processed_at"], tz),
        "note": r["note"],
        "restock": False,
        "user_id": None,
        "duties": [],
        "total_duties_set": money_set(store, 0, pres, rate),
        "refund_line_items": line_items,
        "refund_shipping_lines": []
        if shipping <= 0
        else [
            {
                "id": r["id"] + 23,
                "shipping_line_id": order["id"] + 5,
                "subtotal_amount_set": money_set(store, shipping, pres, rate),
            }
        ],
        "transactions": [
            {
                "id": TRANSACTION_ID_BASE + r["id"] % 10**12,
                "admin_graphql_api_id": f"gid://shopify/OrderTransaction/{TRANSACTION_ID_BASE + r['id'] % 10**12}",
                "order_id": order["id"],
                "kind": "refund",
                "gateway": "bogus",
                "status": "success",
                "message": None,
                "created_at": iso_local(r["created_at"], tz),
                "processed_at": iso_local(r["processed_at"], tz),
                "test": bool(order["test"]),
                "amount": money_rest(presentment_amount(r["amount"], rate, store.currency, pres), pres),
                "currency": pres,
                "parent_id": None,
                "source_name": "web",
            }
        ],
        "order_adjustments": [],
    }


def order_payload(store: ShopStore, o: dict[str, Any]) -> dict[str, Any]:
    tz = store.tz
    pres, rate = o["presentment_currency"], o["rate"]
    cur = store.currency
    customer = store.customer_row(o["customer_id"]) if o["customer_id"] is not None else None
    refunds = store.refund_rows(o["id"])
    line_id = _line_item_id(o["id"])
    return {
        "id": o["id"],
        "admin_graphql_api_id": order_gid(o["id"]),
        "app_id": None,
        "buyer_accepts_marketing": False,
        "cancel_reason": o["cancel_reason"],
        "cancelled_at": iso_local(o["cancelled_at"], tz),
        "closed_at": None,
        "confirmation_number": f"C{o['id'] % 10**9:09d}",
        "confirmed": True,
        "contact_email": o["email"],
        "created_at": iso_local(o["created_at"], tz),
        "currency": cur,
        "current_subtotal_price": money_rest(o["subtotal"] + o["edit_delta"] - o["refunded_subtotal"], cur),
        "current_subtotal_price_set": money_set(store, o["subtotal"] + o["edit_delta"] - o["refunded_subtotal"], pres,
                                                rate),
        "current_total_price": money_rest(o["total"] + o["edit_delta"] - o["refunded"], cur),
        "current_total_price_set": money_set(store, o["total"] + o["edit_delta"] - o["refunded"], pres, rate),
        "current_total_tax": money_rest(0, cur),
        "email": o["email"],
        "financial_status": o["financial_status"],
        "fulfillment_status": None,
        "name": f"#{o['number']}",
        "note": None,
        "number": o["number"] - 1000,
        "order_number": o["number"],
        "presentment_currency": pres,
        "processed_at": iso_local(o["processed_at"], tz),
        "source_name": "web",
        "subtotal_price": money_rest(o["subtotal"], cur),
        "subtotal_price_set": money_set(store, o["subtotal"], pres, rate),
        "tags": ", ".join(split_tags(o["tags"] or "")),
        "test": bool(o["test"]),
        "total_discounts": money_rest(0, cur),
        "total_discounts_set": money_set(store, 0, pres, rate),
        "total_line_items_price": money_rest(o["subtotal"], cur),
        "total_line_items_price_set": money_set(store, o["subtotal"], pres, rate),
        "total_price": money_rest(o["total"], cur),
        "total_price_set": money_set(store, o["total"], pres, rate),
        "total_shipping_price_set": money_set(store, o["shipping"], pres, rate),
        "total_tax": money_rest(0, cur),
        "total_tax_set": money_set(store, 0, pres, rate),
        "updated_at": iso_local(o["updated_at"], tz),
        "customer": None
        if customer is None
        else {k: v for k, v in customer_payload(store, customer).items() if k not in ORDER_CUSTOMER_DROPS},
        "line_items": [
            {
                "id": line_id,
                "admin_graphql_api_id": f"gid://shopify/LineItem/{line_id}",
                "name": "Devstore Item",
                "title": "Devstore Item",
                "price": money_rest(o["subtotal"], cur),
                "price_set": money_set(store, o["subtotal"], pres, rate),
                "quantity": 1,
                "current_quantity": 0 if o["refunded_subtotal"] >= o["subtotal"] + o["edit_delta"] else 1,
                "product_exists": True,
                "taxable": False,
            }
        ],
        "refunds": [refund_payload(store, r, o) for r in refunds],
    }


# ---------------------------------------------------------------------------------------------
# Events


def _random_row(store: ShopStore, rng: Any, table: str, where: str = "1", params: tuple[Any, ...] = ()) -> Any:
    """A row picked by a random id pivot: O(log n) on a million-order shop, deterministic per rng."""
    db = store._db
    lo, hi = db.execute(f"SELECT min(id), max(id) FROM {table}").fetchone()  # noqa: S608
    if lo is None:
        return None
    cols = ORDER_COLUMNS if table == "orders" else CUSTOMER_COLUMNS
    pivot = lo + _pick(rng, hi - lo + 1)
    select = f"SELECT {','.join(cols)} FROM {table}"  # noqa: S608
    row = db.execute(f"{select} WHERE id >= ? AND ({where}) ORDER BY id LIMIT 1", (pivot, *params)).fetchone()
    if row is None:
        row = db.execute(f"{select} WHERE {where} ORDER BY id LIMIT 1", params).fetchone()
    return None if row is None else dict(zip(cols, row, strict=True))


def _next_number(store: ShopStore) -> int:
    """Order numbers continue from the highest one (kept in memory: no index on number)."""
    with store._lock:
        current = store._ids.get("number")
        if current is None:
            (current,) = store._db.execute("SELECT coalesce(max(number), 1000) FROM orders").fetchone()
        store._ids["number"] = int(current) + 1
        return store._ids["number"]


def _new_customer(store: ShopStore, rng: Any, ts: int) -> dict[str, Any]:
    cid = store._next_id("customers")
    first, last = FIRST_NAMES[_pick(rng, len(FIRST_NAMES))], LAST_NAMES[_pick(rng, len(LAST_NAMES))]
    row = {
        "id": cid,
        "created_at": ts,
        "updated_at": ts,
        "first_name": first,
        "last_name": last,
        "email": f"{first.lower()}.{cid % 10**7}@example.com",
        "phone": None,
        "city": "Auckland",
        "country_code": "NZ",
        "tags": CUSTOMER_TAGS[_pick(rng, len(CUSTOMER_TAGS))],
        "rfm_group": "PROSPECTS",
        "number_of_orders": 0,
        "amount_spent": 0,
    }
    store._db.execute(
        f"INSERT INTO customers ({','.join(CUSTOMER_COLUMNS)}) VALUES ({','.join('?' * len(CUSTOMER_COLUMNS))})",  # noqa: S608
        [row[c] for c in CUSTOMER_COLUMNS],
    )
    return row


def _order_create(store: ShopStore, rng: Any, *, customer: str) -> list[Event]:
    events: list[Event] = []
    with store._lock:
        ts = store.event_time()
        cust: dict[str, Any] | None = None
        if customer == "existing":
            cust = _random_row(store, rng, "customers")
        elif customer == "new":
            cust = _new_customer(store, rng, ts)
            events.append(("customers/create", customer_payload(store, cust)))
        scale = minor_units(store.currency)
        unit = rate_between("USD", store.currency)  # shop-currency units per USD
        subtotal = max(1, int((20 + rng.random() * 120) * unit * scale))
        shipping = 0 if rng.random() < 0.4 else int(6.5 * unit * scale)
        pres = store.currency
        if rng.random() < 0.2:
            choices = [c for c in PRESENTMENT_CHOICES if c != store.currency]
            pres = choices[_pick(rng, len(choices))]
        oid = store._next_id("orders")
        number = _next_number(store)
        row = {
            "id": oid,
            "number": number,
            "customer_id": cust["id"] if cust else None,
            "email": cust["email"] if cust else f"guest{oid % 10**6}@example.com",
            "created_at": ts,
            "processed_at": ts,
            "updated_at": ts,
            "cancelled_at": None,
            "cancel_reason": None,
            "test": 1 if rng.random() < 0.02 else 0,
            "financial_status": "paid",
            "presentment_currency": pres,
            "rate": round(rate_between(store.currency, pres), 6) if pres != store.currency else 1.0,
            "subtotal": subtotal,
            "shipping": shipping,
            "total": subtotal + shipping,
            "refunded": 0,
            "refunded_subtotal": 0,
            "tags": ORDER_TAGS[_pick(rng, len(ORDER_TAGS))],
            "edit_delta": 0,
        }
        store._db.execute(
            f"INSERT INTO orders ({','.join(ORDER_COLUMNS)}) VALUES ({','.join('?' * len(ORDER_COLUMNS))})",  # noqa: S608
            [row[c] for c in ORDER_COLUMNS],
        )
        if cust is not None:
            store._db.execute("UPDATE customers SET updated_at = ? WHERE id = ?", (ts, cust["id"]))
            store.customer_stats_refresh([cust["id"]])
        events.append(("orders/create", order_payload(store, row)))
        if cust is not None:
            fresh = store.customer_row(cust["id"]) or cust
            events.append(("customers/update", customer_payload(store, fresh)))
    return events


def _refund(store: ShopStore, rng: Any) -> list[Event]:
    with store._lock:
        o = _random_row(store, rng, "orders", "cancelled_at IS NULL AND refunded < total + edit_delta")
        if o is None:
            return []
        ts = store.event_time()
        current_total = o["total"] + o["edit_delta"]  # what the order is worth after its edits
        remaining_sub = o["subtotal"] + o["edit_delta"] - o["refunded_subtotal"]
        if rng.random() < 0.4:
            sub, amount = remaining_sub, current_total - o["refunded"]
        else:
            sub = max(1, int(remaining_sub * (0.1 + rng.random() * 0.5))) if remaining_sub > 0 else 0
            amount = max(sub, 1)
        amount = min(amount, current_total - o["refunded"])
        sub = min(sub, amount)
        rid = store._next_id("refunds")
        store._db.execute(
            "INSERT INTO refunds (id, order_id, created_at, processed_at, amount, subtotal, note) "
            "VALUES (?,?,?,?,?,?,?)",
            (rid, o["id"], ts, ts, amount, sub, None),
        )
        refunded = o["refunded"] + amount
        status = "refunded" if refunded >= current_total else "partially_refunded"
        store._db.execute(
            "UPDATE orders SET refunded = ?, refunded_subtotal = refunded_subtotal + ?, financial_status = ?, "
            "updated_at = ? WHERE id = ?",
            (refunded, sub, status, ts, o["id"]),
        )
        if o["customer_id"] is not None:
            store.customer_stats_refresh([o["customer_id"]])
        order = store.order_row(o["id"])
        if order is None:
            raise RuntimeError("order vanished under the store lock")
        refund = {
            "id": rid,
            "order_id": o["id"],
            "created_at": ts,
            "processed_at": ts,
            "amount": amount,
            "subtotal": sub,
            "note": None,
        }
        return [
            ("refunds/create", refund_payload(store, refund, order)),
            ("orders/updated", order_payload(store, order)),
        ]


def _cancel(store: ShopStore, rng: Any) -> list[Event]:
    with store._lock:
        o = _random_row(store, rng, "orders", "cancelled_at IS NULL")
        if o is None:
            return []
        ts = store.event_time()
        events: list[Event] = []
        outstanding = o["total"] + o["edit_delta"] - o["refunded"]
        if o["refunded"] == 0 and rng.random() < 0.5:
            status = "voided"  # cancelled before capture: nothing to refund
        else:
            status = "refunded"
            if outstanding > 0:
                rid = store._next_id("refunds")
                sub = o["subtotal"] + o["edit_delta"] - o["refunded_subtotal"]
                store._db.execute(
                    "INSERT INTO refunds (id, order_id, created_at, processed_at, amount, subtotal, note) "
                    "VALUES (?,?,?,?,?,?,?)",
                    (rid, o["id"], ts, ts, outstanding, sub, "Order cancelled"),
                )
                store._db.execute(
                    "UPDATE orders SET refunded = total + edit_delta, refunded_subtotal = subtotal + edit_delta "
                    "WHERE id = ?", (o["id"],)
                )
                order_now = store.order_row(o["id"])
                if order_now is None:
                    raise RuntimeError("order_now vanished under the store lock")
                events.append(
                    (
                        "refunds/create",
                        refund_payload(
                            store,
                            {
                                "id": rid,
                                "order_id": o["id"],
                                "created_at": ts,
                                "processed_at": ts,
                                "amount": outstanding,
                                "subtotal": sub,
                                "note": "Order cancelled",
                            },
                            order_now,
                        ),
                    )
                )
        store._db.execute(
            "UPDATE orders SET cancelled_at = ?, cancel_reason = 'customer', financial_status = ?, updated_at = ? "
            "WHERE id = ?",
            (ts, status, ts, o["id"]),
        )
        if o["customer_id"] is not None:
            store.customer_stats_refresh([o["customer_id"]])
        order = store.order_row(o["id"])
        if order is None:
            raise RuntimeError("order vanished under the store lock")
        payload = order_payload(store, order)
        events.append(("orders/cancelled", payload))
        events.append(("orders/updated", payload))
        return events


def _edit(store: ShopStore, rng: Any) -> list[Event]:
    """An order edit. Usually items added or removed: currentSubtotalPriceSet/currentTotalPriceSet
    move with no refund (as Shopify's order editing does); otherwise only a tag changes."""
    with store._lock:
        o = _random_row(store, rng, "orders")
        if o is None:
            return []
        ts = store.event_time()
        if o["cancelled_at"] is None and o["refunded"] == 0 and rng.random() < 0.6:
            current = o["subtotal"] + o["edit_delta"]
            delta = max(int(current * (rng.random() - 0.4)), 1 - current) or 1  # -40%..+60%, an item stays
            store._db.execute("UPDATE orders SET edit_delta = edit_delta + ?, updated_at = ? WHERE id = ?",
                              (delta, ts, o["id"]))
            if o["customer_id"] is not None:
                store.customer_stats_refresh([o["customer_id"]])
        else:
            tags = split_tags(o["tags"] or "")
            new_tag = ("edited", "priority", "gift", "reviewed")[_pick(rng, 4)]
            if new_tag in tags:
                tags.remove(new_tag)
            else:
                tags.append(new_tag)
            store._db.execute("UPDATE orders SET tags = ?, updated_at = ? WHERE id = ?",
                              (", ".join(tags), ts, o["id"]))
        order = store.order_row(o["id"])
        if order is None:
            raise RuntimeError("order vanished under the store lock")
        return [("orders/updated", order_payload(store, order))]


def _customer_update(store: ShopStore, rng: Any) -> list[Event]:
    with store._lock:
        c = _random_row(store, rng, "customers")
        if c is None:
            return []
        ts = store.event_time()
        tags = split_tags(c["tags"] or "")
        new_tag = ("vip", "newsletter", "wholesale", "returning")[_pick(rng, 4)]
        if new_tag in tags:
            tags.remove(new_tag)
        else:
            tags.append(new_tag)
        store._db.execute("UPDATE customers SET tags = ?, updated_at = ? WHERE id = ?", (", ".join(tags), ts, c["id"]))
        fresh = store.customer_row(c["id"])
        if fresh is None:
            raise RuntimeError("fresh vanished under the store lock")
        return [("customers/update", customer_payload(store, fresh))]


def _customer_create(store: ShopStore, rng: Any) -> list[Event]:
    with store._lock:
        c = _new_customer(store, rng, store.event_time())
        return [("customers/create", customer_payload(store, c))]


def _customer_delete(store: ShopStore, rng: Any) -> list[Event]:
    # Shopify only deletes customers without orders; the rest can only be redacted.
    with store._lock:
        c = _random_row(store, rng, "customers", "number_of_orders = 0")
        if c is None:
            return []
        store.event_time()
        store._db.execute("DELETE FROM customers WHERE id = ?", (c["id"],))
        return [
            (
                "customers/delete",
                {"id": c["id"], "tax_exemptions": [], "admin_graphql_api_id": customer_gid(c["id"])},
            )
        ]


def _order_delete(store: ShopStore, rng: Any) -> list[Event]:
    # Only cancelled (or test) orders can be deleted in the admin.
    with store._lock:
        o = _random_row(store, rng, "orders", "cancelled_at IS NOT NULL OR test = 1")
        if o is None:
            return []
        store.event_time()
        store._db.execute("DELETE FROM refunds WHERE order_id = ?", (o["id"],))
        store._db.execute("DELETE FROM orders WHERE id = ?", (o["id"],))
        if o["customer_id"] is not None:
            store.customer_stats_refresh([o["customer_id"]])
        return [("orders/delete", {"id": o["id"]})]


HANDLERS = {
    "order_existing_customer": lambda s, r: _order_create(s, r, customer="existing"),
    "order_new_customer": lambda s, r: _order_create(s, r, customer="new"),
    "order_guest": lambda s, r: _order_create(s, r, customer="guest"),
    "refund": _refund,
    "cancel": _cancel,
    "edit": _edit,
    "customer_update": _customer_update,
    "customer_create": _customer_create,
    "customer_delete": _customer_delete,
    "order_delete": _order_delete,
}
