"""Token encryption at rest: Fernet keys combined with MultiFernet.

The first key encrypts; every key decrypts, so a new key can be put first while the old
one still reads what was written under it. `rotate` re-encrypts a token under the first key,
after which the old key can be removed. Plaintext never appears in messages or reprs.
"""

from __future__ import annotations

import binascii
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr

_UNDECRYPTABLE = (
    "None of the configured TOKEN_ENCRYPTION_KEYS can decrypt stored tokens: the key they "
    "were written under was changed or removed. Put the old key back after the new one "
    "(then run `python -m bot rotate-keys`), or ask people to link their Taiga account again "
    "with /taiga login."
)


class EncryptionKeyError(Exception):
    """A configured key is unusable, or no configured key can decrypt a stored token."""


def generate_key() -> str:
    """A fresh Fernet key, as the text to put in TOKEN_ENCRYPTION_KEYS."""
    return Fernet.generate_key().decode("ascii")


def _fernet(key: SecretStr | str, position: int, count: int) -> Fernet:
    plain = key.get_secret_value() if isinstance(key, SecretStr) else key
    try:
        return Fernet(plain.strip())
    except (ValueError, TypeError, binascii.Error):
        raise EncryptionKeyError(
            "TOKEN_ENCRYPTION_KEYS holds a key that is not a valid Fernet key "
            f"(position {position} of {count}; generate one with `python -m bot keygen`)."
        ) from None


class TokenCipher:
    """Encrypts with the first key, decrypts with any of them."""

    def __init__(self, keys: Sequence[SecretStr | str] | str) -> None:
        if isinstance(keys, str):
            keys = [part for part in keys.split(",") if part.strip()]
        if not keys:
            raise EncryptionKeyError(
                "TOKEN_ENCRYPTION_KEYS is empty: generate a key with `python -m bot keygen`."
            )
        count = len(keys)
        self._fernet = MultiFernet(
            [_fernet(key, position, count) for position, key in enumerate(keys, start=1)]
        )
        self._key_count = count

    def __repr__(self) -> str:
        return f"TokenCipher(<{self._key_count} key(s)>)"

    def encrypt(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError):
            raise EncryptionKeyError(_UNDECRYPTABLE) from None

    def rotate(self, token: str) -> str:
        """The same plaintext, re-encrypted under the first key."""
        try:
            return self._fernet.rotate(token.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeError):
            raise EncryptionKeyError(_UNDECRYPTABLE) from None
