"""Schemathesis hooks for what JSON Schema cannot say about Lumen's API.

- `expiresAt` must be in the future (400 `invalid_expires_at` otherwise): a time-relative rule
  that no static schema can carry.
- Every JSON number must fit a Decimal (about 38 significant digits, magnitudes 1e-128 to
  3.4e165; otherwise 400 `invalid_json`): Lumen keeps numbers exact and relays bodies, and a
  schema cannot bound the free-form fields it passes on.

Generated bodies that break these are not sent as valid data; the server's refusals are tested
in the Swift and interop suites.
"""

from datetime import datetime, timezone

import schemathesis


def _future_or_absent(body):
    if not isinstance(body, dict) or body.get("expiresAt") is None:
        return True
    value = body["expiresAt"]
    if not isinstance(value, str):
        return True  # a wrong type is negative data: let it through
    try:
        moment = datetime.fromisoformat(value.replace("z", "+00:00").replace("Z", "+00:00"))
    except ValueError:
        return True
    if moment.tzinfo is None:
        return True
    return moment > datetime.now(timezone.utc)


def _decimal_numbers(value):
    if isinstance(value, bool):
        return True
    if isinstance(value, int):
        return len(str(abs(value))) <= 38
    if isinstance(value, float):
        return value == 0 or 1e-100 < abs(value) < 1e38
    if isinstance(value, dict):
        return all(_decimal_numbers(v) for v in value.values())
    if isinstance(value, list):
        return all(_decimal_numbers(v) for v in value)
    return True


@schemathesis.hook
def filter_body(ctx, body):
    return _future_or_absent(body) and _decimal_numbers(body)


def _ordered_dates(query):
    """startDate must not be after endDate (400 `invalid_date_range`): a rule between two
    parameters, which JSON Schema cannot state."""
    if not isinstance(query, dict):
        return True
    start, end = query.get("startDate"), query.get("endDate")
    if not isinstance(start, str) or not isinstance(end, str):
        return True
    return start[:10] <= end[:10]


def _one_owner(query):
    """Usage over time is of one user or one client, not both (400 `invalid_owner`): another
    rule between two parameters."""
    if not isinstance(query, dict):
        return True
    return query.get("userId") is None or query.get("clientId") is None


@schemathesis.hook
def filter_query(ctx, query):
    return _ordered_dates(query) and _one_owner(query)
