"""strato's pure domain: ids, errors, states, requests and resource arithmetic.

Nothing here does I/O or knows about HTTP, the database or the bus.
"""
