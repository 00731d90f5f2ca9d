"""The Identity API (Keystone v3 subset) under ``/identity``: version documents and
tokens."""
