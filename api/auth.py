"""Bearer tokens and roles, from ``CERTD_API_TOKENS="role:token,role:token"``.

A token's name in events and logs is its role and a short fingerprint of the
token, so a person can tell credentials apart without ever seeing one.
"""

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from fastapi import HTTPException, Request, status

from domain.actor import Actor


class Role(StrEnum):
    APPLICANT = "applicant"
    OPERATOR = "operator"
    BILLING = "billing"
    AUDITOR = "auditor"


class TokenConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Credential:
    role: Role
    token_digest: bytes
    name: str


class TokenTable:
    def __init__(self, credentials: list[Credential]) -> None:
        self._credentials = credentials

    @classmethod
    def parse(cls, spec: str) -> "TokenTable":
        """Read ``role:token`` pairs; an unknown role or empty token is refused."""
        credentials = []
        for position, entry in enumerate(filter(None, spec.split(",")), start=1):
            role_name, separator, token = entry.strip().partition(":")
            if not separator or not token:
                msg = f"CERTD_API_TOKENS entry {position} is not role:token"
                raise TokenConfigError(msg)
            if role_name not in Role.__members__.values():
                known = ", ".join(Role)
                msg = (
                    f"CERTD_API_TOKENS entry {position} has the unknown role "
                    f"'{role_name}'; roles are {known}"
                )
                raise TokenConfigError(msg)
            digest = hashlib.sha256(token.encode()).digest()
            name = f"{role_name}-{digest.hex()[:8]}"
            credentials.append(Credential(Role(role_name), digest, name))
        return cls(credentials)

    def authenticate(self, token: str) -> list[Credential]:
        """Return the credentials matching a token, comparing in constant time."""
        digest = hashlib.sha256(token.encode()).digest()
        return [
            credential
            for credential in self._credentials
            if hmac.compare_digest(credential.token_digest, digest)
        ]


def bearer_token(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "send Authorization: Bearer <token>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return token.strip()


def require(*roles: Role) -> Callable[[Request], Actor]:
    """Return a dependency that admits only the given roles."""

    def admit(request: Request) -> Actor:
        table: TokenTable = request.app.state.tokens
        credentials = table.authenticate(bearer_token(request))
        if not credentials:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "the bearer token is not known",
                headers={"WWW-Authenticate": "Bearer"},
            )
        for credential in credentials:
            if credential.role in roles:
                return Actor(role=credential.role.value, name=credential.name)
        allowed = ", ".join(role.value for role in roles)
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"role {credentials[0].role.value} may not do this; allowed: {allowed}",
        )

    return admit
