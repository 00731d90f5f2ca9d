"""The REST edge: Nova v2.1 and Glance v2 wire formats stop here."""

from strato.api.app import create_app
from strato.api.auth import AuthBackend, StaticTokenAuth
from strato.api.deps import ApiDeps

__all__ = ["ApiDeps", "AuthBackend", "StaticTokenAuth", "create_app"]
