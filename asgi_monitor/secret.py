"""A string wrapper that never prints its value.

Tokens, passwords and webhook URLs are held as :class:`Secret` from the moment they are read, so a
``repr()`` of the configuration, a log line or an export cannot leak them by accident.
"""

from __future__ import annotations

import hmac

__all__ = ["MASK", "Secret"]

# What stands in for a secret wherever one would be shown.
MASK = "**********"


class Secret:
    """Holds a secret value; ``str()`` and ``repr()`` show a mask, never the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    @classmethod
    def from_file(cls, path: str) -> Secret:
        """The secret held in a file (a Docker or Kubernetes secret).

        Editors and ``echo`` add a final newline and some editors a byte-order mark; neither is
        ever part of a secret, so the file reads the same as the variable would.
        """
        with open(path, encoding="utf-8-sig") as f:
            value = f.read().strip()
        if not value:
            raise ValueError("the file is empty")
        return cls(value)

    def get_secret_value(self) -> str:
        return self._value

    def matches(self, candidate: str) -> bool:
        """Constant-time comparison, so response timing does not reveal a prefix of the secret."""
        return hmac.compare_digest(self._value.encode(), candidate.encode())

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __str__(self) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and self.matches(other._value)

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> tuple[type[Secret], tuple[str]]:
        # Explicit so pickling (e.g. to a worker process) keeps working with __slots__.
        return (Secret, (self._value,))
