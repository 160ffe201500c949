"""Encryption at rest: the repository's master key, its key slots and sealed bytes.

An encrypted repository has one random 32-byte master key. HKDF-SHA256 derives two
keys from it: the data key (AES-256-GCM) that seals every stored object, and the id
key (HMAC-SHA256) that names blobs and lock files, so stored names reveal nothing
about the content. The master key is stored only wrapped, once per key slot in
config.json: each slot seals it with a key derived from a secret (a key file's
content or a passphrase) by Argon2id.

Sealed bytes are one version byte (1), a random 12-byte nonce, then the AES-GCM
ciphertext with its 16-byte tag. The associated data names what the bytes are (and,
for blobs and documents, their name), so bytes moved to another name fail to open.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import hmac
import os
import secrets
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import BaseModel

from odoo_dr.errors import KeyRejected, RejectedError, RepositoryError

ALGORITHM = "aes-256-gcm"
KEY_FILE_VARIABLE = "ODOO_DR_KEY_FILE"
PASSPHRASE_VARIABLE = "ODOO_DR_PASSPHRASE"
NEW_KEY_FILE_VARIABLE = "ODOO_DR_NEW_KEY_FILE"
NEW_PASSPHRASE_VARIABLE = "ODOO_DR_NEW_PASSPHRASE"
# The key of the repository that `odoo-dr copy --to` writes, when it differs.
TARGET_KEY_FILE_VARIABLE = "ODOO_DR_TARGET_KEY_FILE"
TARGET_PASSPHRASE_VARIABLE = "ODOO_DR_TARGET_PASSPHRASE"

SEALED_VERSION = 1
NONCE_SIZE = 12
TAG_SIZE = 16
# Bytes that sealing adds: the version byte, the nonce and the tag.
OVERHEAD = 1 + NONCE_SIZE + TAG_SIZE

# Associated data of each kind of sealed bytes.
BLOB = b"odoo-dr blob "
PACK_HEADER = b"odoo-dr pack header"
INDEX = b"odoo-dr index"
DOCUMENT = b"odoo-dr document "
LOCK = b"odoo-dr lock "
KEY_SLOT = b"odoo-dr key slot "


class DecryptionFailed(ValueError):
    """Sealed bytes failed to open: damaged, moved, or sealed with another key."""


@dataclass(frozen=True)
class KdfParameters:
    """Argon2id costs: memory in KiB, passes over it, and parallel lanes."""

    memory_cost: int = 64 * 1024
    iterations: int = 4
    lanes: int = 4


# Argon2id with 64 MiB, 4 passes and 4 lanes took 0.34 s (3 passes: 0.21 s) on one
# Intel Xeon vCPU with cryptography 50.0.2. That is the cost of each unlock, and of
# each guess of an attacker who holds config.json.
DEFAULT_KDF = KdfParameters()


class KeySlot(BaseModel):
    """One wrapped copy of the master key, opened by one secret."""

    id: str
    kdf: str = "argon2id"
    salt: str
    memory_cost: int
    iterations: int
    lanes: int
    wrapped_key: str
    created_at: datetime


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _seal(aead: AESGCM, data: bytes | memoryview, associated: bytes) -> bytes:
    nonce = os.urandom(NONCE_SIZE)
    return bytes([SEALED_VERSION]) + nonce + aead.encrypt(nonce, data, associated)


def _open(aead: AESGCM, sealed: bytes | memoryview, associated: bytes) -> bytes:
    # A view, so a blob sliced out of a mapped pack is not copied before decryption.
    view = memoryview(sealed)
    if len(view) < OVERHEAD or view[0] != SEALED_VERSION:
        raise DecryptionFailed("not sealed by odoo-dr (unknown version or too short)")
    try:
        return aead.decrypt(
            bytes(view[1 : 1 + NONCE_SIZE]), view[1 + NONCE_SIZE :], associated
        )
    except InvalidTag:
        raise DecryptionFailed(
            "authentication failed (damaged, moved, or sealed with another key)"
        ) from None


def _derive(master: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(
        master
    )


# The Argon2id costs a key slot may ask for. A damaged or forged config.json must not
# make odoo-dr request terabytes of memory or run for days before it reports the damage.
KDF_LIMITS = {
    "memory_cost": (8, 4 * 1024 * 1024),  # KiB: up to 4 GiB
    "iterations": (1, 100),
    "lanes": (1, 64),
}
SALT_MIN_SIZE = 8


def _decode(slot: KeySlot, field: str) -> bytes:
    try:
        return base64.b64decode(getattr(slot, field), validate=True)
    except ValueError:
        raise _damaged_slot(slot, f"its {field} is not base64") from None


def _damaged_slot(slot: KeySlot, problem: str) -> RepositoryError:
    return RepositoryError(
        f"key slot {slot.id} of the repository's config.json is damaged: {problem}",
        hint="put back config.json from a copy of the repository (an off-site copy "
        "made with 'odoo-dr copy' has its own key slots)",
    )


def check_slot(slot: KeySlot) -> None:
    """Raise RepositoryError when `slot` cannot be a key slot odoo-dr wrote."""
    if slot.kdf != "argon2id":
        raise RepositoryError(
            f"key slot {slot.id} in config.json uses key derivation {slot.kdf!r}, "
            "which this odoo-dr does not support",
            hint="upgrade odoo-dr; if config.json is damaged, put it back from a "
            "copy of the repository",
        )
    for field, (low, high) in KDF_LIMITS.items():
        value = getattr(slot, field)
        if not low <= value <= high:
            raise _damaged_slot(slot, f"{field} {value} is outside {low}..{high}")
    if slot.memory_cost < 8 * slot.lanes:
        raise _damaged_slot(
            slot,
            f"memory_cost {slot.memory_cost} is below 8 KiB per lane "
            f"({slot.lanes} lanes)",
        )
    if len(_decode(slot, "salt")) < SALT_MIN_SIZE:
        raise _damaged_slot(slot, f"its salt is shorter than {SALT_MIN_SIZE} bytes")
    _decode(slot, "wrapped_key")


def _slot_key(secret: bytes, slot: KeySlot) -> bytes:
    check_slot(slot)
    return Argon2id(
        salt=base64.b64decode(slot.salt),
        length=32,
        iterations=slot.iterations,
        lanes=slot.lanes,
        memory_cost=slot.memory_cost,
    ).derive(secret)


class RepositoryKeys:
    """The keys of an unlocked repository: sealing, opening and keyed names."""

    def __init__(self, master: bytes) -> None:
        if len(master) != 32:
            raise ValueError("the master key must be 32 bytes")
        self._master = master
        self._data_key = _derive(master, b"odoo-dr data key")
        self._id_key = _derive(master, b"odoo-dr id key")
        self._aead = AESGCM(self._data_key)

    @classmethod
    def generate(cls) -> RepositoryKeys:
        return cls(secrets.token_bytes(32))

    def __repr__(self) -> str:
        return "RepositoryKeys(<secret>)"

    def seal(self, data: bytes | memoryview, associated: bytes) -> bytes:
        return _seal(self._aead, data, associated)

    def open(self, sealed: bytes | memoryview, associated: bytes) -> bytes:
        """Return the plaintext of `sealed`; raise `DecryptionFailed` if it fails."""
        return _open(self._aead, sealed, associated)

    def object_id(self, data: bytes | memoryview) -> str:
        """Return the keyed name of a blob: HMAC-SHA256 of its content."""
        # hmac.digest is the one-shot C path: the same HMAC, a fifth faster.
        return hmac.digest(self._id_key, data, "sha256").hex()

    def name(self, purpose: str, value: str) -> str:
        """Return a keyed name for `value` (such as a tenant) used as `purpose`."""
        message = f"{purpose}\0{value}".encode()
        return hmac.new(self._id_key, message, hashlib.sha256).hexdigest()

    def make_slot(
        self, secret: bytes, repository_id: str, kdf: KdfParameters = DEFAULT_KDF
    ) -> KeySlot:
        """Wrap the master key with a key derived from `secret`."""
        salt = secrets.token_bytes(16)
        slot = KeySlot(
            id=secrets.token_hex(4),
            salt=_b64(salt),
            memory_cost=kdf.memory_cost,
            iterations=kdf.iterations,
            lanes=kdf.lanes,
            wrapped_key="",
            created_at=datetime.now(UTC),
        )
        wrapped = _seal(
            AESGCM(_slot_key(secret, slot)),
            self._master,
            KEY_SLOT + repository_id.encode("ascii"),
        )
        return slot.model_copy(update={"wrapped_key": _b64(wrapped)})


def opened_slots(slots: list[KeySlot], secret: bytes, repository_id: str) -> list[int]:
    """Return the positions of every slot that `secret` opens."""
    opened = []
    for position, slot in enumerate(slots):
        try:
            _open(
                AESGCM(_slot_key(secret, slot)),
                base64.b64decode(slot.wrapped_key),
                KEY_SLOT + repository_id.encode("ascii"),
            )
        except (DecryptionFailed, ValueError):
            continue
        opened.append(position)
    return opened


def unlock(
    slots: list[KeySlot], secret: bytes, repository_id: str, location: str
) -> tuple[RepositoryKeys, int]:
    """Return the keys and the index of the first slot that `secret` opens."""
    for slot in slots:
        check_slot(slot)
    for position, slot in enumerate(slots):
        try:
            master = _open(
                AESGCM(_slot_key(secret, slot)),
                base64.b64decode(slot.wrapped_key),
                KEY_SLOT + repository_id.encode("ascii"),
            )
        except (DecryptionFailed, ValueError):
            continue
        return RepositoryKeys(master), position
    raise KeyRejected(
        f"the key given does not unlock encrypted repository {location} "
        f"(tried its {len(slots)} key slot(s))",
        hint=f"check ${KEY_FILE_VARIABLE} or ${PASSPHRASE_VARIABLE}; the key may "
        "have been changed with 'odoo-dr key change'. If the key is right, the key "
        "slots or id in config.json are damaged: put back config.json from a copy "
        "of the repository",
    )


# -- secrets from the environment or a prompt


def _read_key_file(path: str, variable: str) -> bytes:
    try:
        content = Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise RejectedError(
            f"cannot read the key file {path} named by ${variable}: "
            f"{exc.strerror or exc}",
            hint=f"set ${variable} to the path of a readable file that holds the key",
        ) from None
    # A trailing line break (as `echo` and editors write) is not part of the key.
    content = content.rstrip(b"\r\n")
    if not content:
        raise RejectedError(
            f"the key file {path} named by ${variable} is empty",
            hint="put the key (any bytes, at least one) into that file",
        )
    return content


def secret_from_environment(
    *,
    new: bool = False,
    confirm: bool = False,
    prompt: str = "Repository passphrase: ",
    variables: tuple[str, str] | None = None,
) -> bytes | None:
    """Return the secret from a key file, a passphrase variable or a prompt.

    With `new`, the ODOO_DR_NEW_* variables are read, and `variables` names another
    (key file, passphrase) pair. With `confirm`, the prompt repeats to confirm the
    entry. Returns None when no variable is set and stdin is not a terminal.
    """
    file_variable = NEW_KEY_FILE_VARIABLE if new else KEY_FILE_VARIABLE
    passphrase_variable = NEW_PASSPHRASE_VARIABLE if new else PASSPHRASE_VARIABLE
    if variables is not None:
        file_variable, passphrase_variable = variables
    key_file = os.environ.get(file_variable)
    passphrase = os.environ.get(passphrase_variable)
    if key_file and passphrase:
        raise RejectedError(
            f"both ${file_variable} and ${passphrase_variable} are set",
            hint="set only one of them",
        )
    if key_file:
        return _read_key_file(key_file, file_variable)
    if passphrase is not None:
        if not passphrase:
            raise RejectedError(
                f"${passphrase_variable} is empty",
                hint="set it to the passphrase, or unset it to be prompted",
            )
        return passphrase.encode("utf-8")
    if not sys.stdin.isatty():
        return None
    entered = getpass.getpass(prompt)
    if not entered:
        raise RejectedError("the passphrase entered is empty", hint="enter one")
    if confirm and getpass.getpass("Repeat the passphrase: ") != entered:
        raise RejectedError(
            "the two passphrases entered differ", hint="run the command again"
        )
    return entered.encode("utf-8")


def missing_secret(location: str, *, new: bool = False) -> RejectedError:
    """Return the error for a command that needs a secret and got none."""
    if new:
        return RejectedError(
            f"no new key given for repository {location}",
            hint=f"set ${NEW_KEY_FILE_VARIABLE} to a key file or "
            f"${NEW_PASSPHRASE_VARIABLE} to a passphrase, or run the command in a "
            "terminal to be prompted",
        )
    return KeyRejected(
        f"repository {location} is encrypted and no key was given",
        hint=f"set ${KEY_FILE_VARIABLE} to the key file or ${PASSPHRASE_VARIABLE} "
        "to the passphrase, or run the command in a terminal to be prompted",
    )
