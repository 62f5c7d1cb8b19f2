"""What of a webhook payload we keep: everything but personal data.

Tenure needs ids, dates, money, statuses and tags; it never needs to know who a
customer is. Payloads are stripped before they are stored, so a database dump,
the admin or a log line cannot leak a name, an email, a phone number or an address.
"""

from __future__ import annotations

from typing import Any

# Keys dropped wherever they appear (any depth). Whole address/contact objects go at once.
PII_KEYS = frozenset({
    "email", "contact_email", "customer_email", "phone", "sms_marketing_phone",
    "first_name", "last_name", "full_name", "company",
    "billing_address", "shipping_address", "default_address", "addresses", "address",
    "address1", "address2", "city", "zip", "province", "province_code", "latitude", "longitude",
    "browser_ip", "client_details", "note", "note_attributes", "customer_locale",
    "email_marketing_consent", "sms_marketing_consent", "marketing_opt_in_level",
    "multipass_identifier", "tax_exemptions", "shop_owner",
})
# Inside these objects every string that names a person goes too ("name" on an order is "#1001" and stays).
_PERSON_OBJECTS = frozenset({"customer", "user", "associated_user"})


def payload_strip_pii(value: Any, *, _in_person: bool = False) -> Any:
    """A copy of a webhook payload without personal data (see PII_KEYS)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key in PII_KEYS or (_in_person and key == "name"):
                continue
            out[key] = payload_strip_pii(item, _in_person=key in _PERSON_OBJECTS)
        return out
    if isinstance(value, list):
        return [payload_strip_pii(item, _in_person=_in_person) for item in value]
    return value
