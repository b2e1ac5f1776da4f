"""Ed25519 signing keys as files, with rotation, and the published keyring.

Layout under a key directory (default ``$USERAUDIT_HOME/integrity/keys``,
or ``USERAUDIT_KEYS``)::

    <key id>.pem   private key, PKCS#8 PEM, mode 0600
    <key id>.pub   its public key, SubjectPublicKeyInfo PEM
    current        the key id that signs from now on

The key id is the first 16 hex digits of SHA-256 of the raw public key. A
*keyring* is PEM public keys one after the other (``public-key`` prints
it); verification looks each checkpoint's key id up in it.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from useraudit import config

_PEM_BEGIN = b"-----BEGIN PUBLIC KEY-----"


class KeyFileError(RuntimeError):
    """A key file is missing, unreadable or not an Ed25519 key (message for operators)."""


def default_key_dir() -> Path:
    return config.default_key_dir()


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@dataclass(frozen=True)
class SigningKey:
    id: str
    private: Ed25519PrivateKey

    def sign(self, message: bytes) -> str:
        return base64.b64encode(self.private.sign(message)).decode()

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()


def generate(directory: Path | None = None) -> SigningKey:
    """Create a new key in ``directory`` and make it current (rotation is the same step)."""
    directory = directory or default_key_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    private = Ed25519PrivateKey.generate()
    kid = key_id(private.public_key())
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path = directory / f"{kid}.pem"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    (directory / f"{kid}.pub").write_bytes(public_pem(private.public_key()))
    tmp = directory / "current.tmp"
    tmp.write_text(kid + "\n")
    os.replace(tmp, directory / "current")
    return SigningKey(kid, private)


def load_current(directory: Path | None = None) -> SigningKey | None:
    """The current signing key, or None when no key was ever made there."""
    directory = directory or default_key_dir()
    try:
        kid = (directory / "current").read_text().strip()
    except FileNotFoundError:
        return None
    path = directory / f"{kid}.pem"
    try:
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"cannot read signing key {path}: {exc}") from exc
    if not isinstance(private, Ed25519PrivateKey):
        raise KeyFileError(f"{path} is not an Ed25519 private key")
    return SigningKey(kid, private)


class Keyring:
    """Public keys by key id: what a verifier trusts."""

    def __init__(self, keys: dict[str, Ed25519PublicKey] | None = None) -> None:
        self.keys = dict(keys or {})

    @classmethod
    def from_pem(cls, data: bytes, source: str = "keyring") -> Keyring:
        keys: dict[str, Ed25519PublicKey] = {}
        for block in data.split(_PEM_BEGIN)[1:]:
            try:
                key = serialization.load_pem_public_key(_PEM_BEGIN + block)
            except ValueError as exc:
                raise KeyFileError(f"{source}: a public key could not be read: {exc}") from exc
            if not isinstance(key, Ed25519PublicKey):
                raise KeyFileError(f"{source}: holds a public key that is not Ed25519")
            keys[key_id(key)] = key
        if not keys:
            raise KeyFileError(f"{source} holds no PEM public key")
        return cls(keys)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Keyring:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise KeyFileError(f"cannot read public key file {path}: {exc}") from exc
        return cls.from_pem(data, str(path))

    @classmethod
    def from_directory(cls, directory: Path | None = None) -> Keyring:
        directory = directory or default_key_dir()
        data = b"".join(p.read_bytes() for p in sorted(directory.glob("*.pub")))
        return cls.from_pem(data, str(directory))

    def pem(self) -> bytes:
        return b"".join(public_pem(k) for _kid, k in sorted(self.keys.items()))

    def verify(self, kid: str, signature: str, message: bytes) -> bool:
        key = self.keys.get(kid)
        if key is None:
            return False
        try:
            key.verify(base64.b64decode(signature, validate=True), message)
        except (InvalidSignature, ValueError):
            return False
        return True
