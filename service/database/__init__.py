"""The database: the pool and its error translation, migrations, grants, the embedded PostgreSQL."""
