from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from storage.crypto import EncryptionKeyError, TokenCipher, generate_key


def test_encrypted_token_decrypts_to_the_plaintext_and_does_not_contain_it() -> None:
    cipher = TokenCipher([generate_key()])

    token = cipher.encrypt("auth-token-plaintext")

    assert "auth-token-plaintext" not in token
    assert cipher.decrypt(token) == "auth-token-plaintext"


def test_generated_key_is_a_fernet_key() -> None:
    Fernet(generate_key())


def test_first_key_encrypts_and_every_key_decrypts() -> None:
    old, new = generate_key(), generate_key()
    written_under_old = TokenCipher([old]).encrypt("secret")

    both = TokenCipher([new, old])

    assert both.decrypt(written_under_old) == "secret"
    assert TokenCipher([new]).decrypt(both.encrypt("other")) == "other"


def test_rotate_reencrypts_under_the_first_key_so_the_old_key_can_go() -> None:
    old, new = generate_key(), generate_key()
    written_under_old = TokenCipher([old]).encrypt("secret")

    rotated = TokenCipher([new, old]).rotate(written_under_old)

    assert TokenCipher([new]).decrypt(rotated) == "secret"
    with pytest.raises(EncryptionKeyError):
        TokenCipher([old]).decrypt(rotated)


def test_malformed_key_names_its_position_and_not_its_value() -> None:
    with pytest.raises(EncryptionKeyError) as caught:
        TokenCipher([generate_key(), "not-a-fernet-key-at-all"])

    message = str(caught.value)
    assert "TOKEN_ENCRYPTION_KEYS holds a key that is not a valid Fernet key" in message
    assert "position 2" in message
    assert "not-a-fernet-key-at-all" not in message
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_no_keys_is_a_clear_error() -> None:
    with pytest.raises(EncryptionKeyError, match="TOKEN_ENCRYPTION_KEYS is empty"):
        TokenCipher([])


def test_token_under_a_removed_key_raises_a_clear_error_not_garbage() -> None:
    token = TokenCipher([generate_key()]).encrypt("plaintext-secret")

    with pytest.raises(EncryptionKeyError) as caught:
        TokenCipher([generate_key()]).decrypt(token)

    message = str(caught.value)
    assert "None of the configured TOKEN_ENCRYPTION_KEYS can decrypt stored tokens" in message
    assert "changed or removed" in message
    assert "plaintext-secret" not in message
    assert token not in message


def test_rotating_a_token_no_key_can_read_raises_the_same_clear_error() -> None:
    token = TokenCipher([generate_key()]).encrypt("x")

    with pytest.raises(EncryptionKeyError, match="changed or removed"):
        TokenCipher([generate_key()]).rotate(token)


def test_garbage_token_raises_encryption_key_error() -> None:
    with pytest.raises(EncryptionKeyError):
        TokenCipher([generate_key()]).decrypt("not a token ✓")


def test_cipher_repr_shows_no_key() -> None:
    key = generate_key()

    assert key not in repr(TokenCipher([key]))
