"""PostgreSQL schemas of a bench run's own, on a server others use too.

Each run creates its schemas under a name of its own, points its connections
at them (`search_path`) and names them (`application_name`) so the run can
find its server processes, then drops exactly those schemas and nothing else.
"""

from __future__ import annotations

import sqlalchemy
from sqlalchemy.engine import make_url

from publisher.store.db import normalize_url


class Schemas:
    def __init__(self, server_url: str, app_name: str) -> None:
        self.url = make_url(normalize_url(server_url))
        self.app_name = app_name
        self.admin = sqlalchemy.create_engine(self.url)
        self.created: list[str] = []

    def new(self, purpose: str) -> str:
        """A database URL whose connections use a new, empty schema of this run's."""
        schema = f"{self.app_name.replace('-', '_')}_{purpose}"
        with self.admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        self.created.append(schema)
        query = {"options": f"-csearch_path={schema}", "application_name": self.app_name}
        return self.url.update_query_dict(query).render_as_string(hide_password=False)

    def backends(self) -> list[int]:
        """The server processes serving this run's connections."""
        with self.admin.connect() as conn:
            rows = conn.execute(
                sqlalchemy.text("SELECT pid FROM pg_stat_activity WHERE application_name = :n"),
                {"n": self.app_name},
            )
            return [int(pid) for (pid,) in rows]

    def drop(self) -> None:
        """Drop the schemas this run created, and only those."""
        with self.admin.begin() as conn:
            for schema in self.created:
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        self.admin.dispose()
