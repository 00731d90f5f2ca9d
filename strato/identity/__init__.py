"""The identity service's own logic: password hashes, the Fernet key repository, tokens
and their validation cache (``service``), and the administration rules (``admin``). The
Keystone v3 wire format lives in ``strato.api.identity``."""
