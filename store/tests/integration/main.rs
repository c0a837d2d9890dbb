//! The store behaviour suite, run on SQLite and PostgreSQL.
