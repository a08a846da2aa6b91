"""Tokens: JWTs (HS256), one secret and audience per kind of principal.

- Vehicles: signed with FLEET_TOKEN_SECRET, audience "longtail-fleet", subject = vehicle id. The
  gateway checks that the token's vehicle is the one the session or upload claims to be.
- Operators: signed with OPERATOR_TOKEN_SECRET, audience "longtail-operators", subject = the
  operator's name; sent as gRPC metadata `authorization: Bearer <token>` on catalog changes.
"""

from __future__ import annotations

import time

import jwt
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

AUDIENCE = "longtail-fleet"
OPERATOR_AUDIENCE = "longtail-operators"


class FleetAuthSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FLEET_", frozen=True)
    token_secret: str = Field(min_length=32, description="secret that signs vehicle tokens (HS256: at least 32 characters)")


class OperatorAuthSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OPERATOR_", frozen=True)
    token_secret: str = Field(min_length=32, description="secret that signs operator tokens (HS256: at least 32 characters)")


class AuthError(Exception):
    """The token is missing, malformed, badly signed or expired."""


def issue_token(subject: str, secret: str, ttl_seconds: float = 24 * 3600, now: float | None = None, audience: str = AUDIENCE, roles: tuple[str, ...] | None = None) -> str:
    """A signed token for `subject`; `roles` (longtail.access) for people and services."""
    if not subject:
        raise ValueError("token subject is empty")
    issued = time.time() if now is None else now
    claims: dict = {"sub": subject, "aud": audience, "iat": int(issued), "exp": int(issued + ttl_seconds)}
    if roles is not None:
        claims["roles"] = list(roles)
    return jwt.encode(claims, secret, algorithm="HS256")


def verify_token(token: str, secret: str, audience: str = AUDIENCE) -> str:
    """Returns the subject the token was issued to, or raises AuthError saying why."""
    return str(verify_claims(token, secret, audience)["sub"])


def verify_claims(token: str, secret: str, audience: str = AUDIENCE) -> dict:
    """The claims of a valid token, or AuthError saying why not."""
    if not token:
        raise AuthError("no auth token")
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], audience=audience, options={"require": ["sub", "exp", "aud"]})
    except jwt.ExpiredSignatureError:
        raise AuthError("token expired") from None
    except jwt.InvalidTokenError as exc:
        raise AuthError(f"invalid token: {exc}") from None
    return claims


def bearer(metadata) -> str:
    """The token of an `authorization: Bearer <token>` gRPC metadata entry, or ''."""
    for key, value in metadata or ():
        if key.lower() == "authorization" and isinstance(value, str) and value.startswith("Bearer "):
            return value[len("Bearer ") :].strip()
    return ""
