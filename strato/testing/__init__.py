"""Helpers for tests and benchmarks: throwaway PostgreSQL databases and RabbitMQ vhosts,
and a launcher that runs each role of strato as its own OS process."""
