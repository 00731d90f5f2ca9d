"""The identity service's own logic: password hashes, the Fernet key repository and
tokens. The Keystone v3 wire format lives in ``strato.api.identity``."""
