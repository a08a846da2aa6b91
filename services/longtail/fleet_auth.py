"""Per-vehicle tokens: JWTs (HS256) signed with the fleet secret, subject = vehicle id.

The gateway checks the signature, expiry and audience, and that the token's vehicle is the
one the session or upload claims to be.
"""

from __future__ import annotations

import time

import jwt
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

AUDIENCE = "longtail-fleet"


class FleetAuthSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FLEET_", frozen=True)
    token_secret: str = Field(min_length=32, description="secret that signs vehicle tokens (HS256: at least 32 characters)")


class AuthError(Exception):
    """The token is missing, malformed, badly signed or expired."""


def issue_token(vehicle_id: str, secret: str, ttl_seconds: float = 24 * 3600, now: float | None = None) -> str:
    if not vehicle_id:
        raise ValueError("vehicle_id is empty")
    issued = time.time() if now is None else now
    claims = {"sub": vehicle_id, "aud": AUDIENCE, "iat": int(issued), "exp": int(issued + ttl_seconds)}
    return jwt.encode(claims, secret, algorithm="HS256")


def verify_token(token: str, secret: str) -> str:
    """Returns the vehicle id the token was issued to, or raises AuthError saying why."""
    if not token:
        raise AuthError("no auth token")
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], audience=AUDIENCE, options={"require": ["sub", "exp", "aud"]})
    except jwt.ExpiredSignatureError:
        raise AuthError("token expired") from None
    except jwt.InvalidTokenError as exc:
        raise AuthError(f"invalid token: {exc}") from None
    return str(claims["sub"])
