"""The Identity API (Keystone v3 subset) under ``/identity``: version documents and
tokens (``routes``), and the administration of domains, projects, users, roles and role
assignments (``admin``), with their policy defaults (``policies``)."""
