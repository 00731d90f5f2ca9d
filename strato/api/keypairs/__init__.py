"""``/v2.1/os-keypairs``: a user's SSH key pairs."""
