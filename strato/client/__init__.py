"""A typed async client of strato's public API (used by the CLI demo, the benchmarks,
the end-to-end tests and the dashboard)."""

from strato.client.cloud import CloudClient, Page
from strato.client.compute import ApiClient, ApiError, ServerView

__all__ = ["ApiError", "CloudClient", "ApiClient", "Page", "ServerView"]
