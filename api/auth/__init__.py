"""Accounts, roles and scopes: who may see which khu phố's cameras, and how they prove it.

``Principal`` is the caller (a logged-in user or an API key); ``ScopeIndex`` maps
cameras to khu phố and khu phố to wards; ``AuthStore`` keeps users, sessions and
API keys in the service's database (``api.auth.db``); ``api.auth.deps`` turns a request into
a principal (or a 401) and checks CSRF on cookie-authenticated writes.
"""

from api.auth.principal import Principal, Role
from api.auth.scope import ScopeIndex

__all__ = ["Principal", "Role", "ScopeIndex"]
