"""Fixtures shared by several test modules."""

# One loopback PostgreSQL server per test session, for every module that asks for it.
from tests.odbc_servers import postgres_server  # noqa: F401  (a pytest fixture)
