"""The TikTok answer codes and messages the sandbox gives (SPEC 7 lists what each one means)."""

from __future__ import annotations

from typing import Final

OK: Final = 0
INVALID_FIELD: Final = 40002
TOO_MANY_REQUESTS: Final = 40100
BATCH_TOO_LARGE: Final = 40061
PII_NOT_HASHED: Final = 40062
INVALID_PARTNER_NAME: Final = 40063
ACCESS_TOKEN_INVALID: Final = 40105
INTERNAL_ERROR: Final = 50000

OK_MESSAGE: Final = "OK"
ACCESS_TOKEN_INVALID_MESSAGE: Final = "Access token is invalid or has been revoked."
TOO_MANY_REQUESTS_MESSAGE: Final = "Too many requests. Please retry in some time."
INTERNAL_ERROR_MESSAGE: Final = "Internal service error. Please retry later."
