"""Feed documents and media: the bytes followers read, kept in the store so an
API or a worker on any machine serves and sends the same ones."""

from __future__ import annotations

import hashlib
import mimetypes
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from publisher.domain.errors import InputError, NotFound
from publisher.domain.i18n import Phrase
from publisher.store.base import StoreBase
from publisher.store.models import (
    FeedDocumentRow,
    MediaRow,
)
from publisher.store.records import utcnow

MAX_MEDIA_BYTES = 10 * 1024 * 1024


class DocumentSide(StoreBase):
    def feed_document(self, filename: str) -> FeedDocumentRow | None:
        with self.session() as session:
            return session.get(FeedDocumentRow, filename)

    def save_media_file(self, path: Path) -> str:
        """Copy a local file into the store; returns its reference `media/<sha>.<ext>`."""
        data = path.read_bytes()
        if len(data) > MAX_MEDIA_BYTES:
            raise InputError(
                "cover_image",
                Phrase(
                    "{name} is larger than {limit:,} bytes", name=path.name, limit=MAX_MEDIA_BYTES
                ),
            )
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if not content_type.startswith("image/"):
            raise InputError("cover_image", Phrase("{name} is not an image", name=path.name))
        return self.save_media(data, content_type, path.suffix.lower())

    def save_media(
        self, data: bytes, content_type: str, suffix: str = "", *, name: str | None = None
    ) -> str:
        """Keep bytes in the store, served under /media/; returns `media/<id><suffix>`.

        The id is the bytes' sha256, so one reference always means the same bytes
        (the API serves media as immutable). A caller that must find the file
        again from something else passes its own 64-hex `name`: the first write
        under a name wins and later writes leave it as it is.
        """
        media_id = (name or hashlib.sha256(data).hexdigest()) + suffix
        with self.session() as session, session.begin():
            if session.get(MediaRow, media_id) is None:
                session.add(
                    MediaRow(id=media_id, content_type=content_type, data=data, created_at=utcnow())
                )
        return f"media/{media_id}"

    def media_created_at(self, media_id: str) -> datetime | None:
        """When these bytes were first stored: /media's Last-Modified."""
        with self.session() as session:
            return session.scalar(select(MediaRow.created_at).where(MediaRow.id == media_id))

    def read_media(self, ref: str) -> tuple[bytes, str]:
        media_id = ref.removeprefix("media/")
        with self.session() as session:
            row = session.get(MediaRow, media_id)
            if row is None:
                raise NotFound(Phrase("{ref} is not in the store", ref=ref))
            return row.data, row.content_type


def delete_media_rows(session: Session, refs: Sequence[str]) -> None:
    """Remove media files inside the caller's transaction (a feed build drops a
    retracted episode's audio as its new document goes live); missing ones are ignored."""
    ids = [ref.removeprefix("media/") for ref in refs]
    if ids:
        session.execute(delete(MediaRow).where(MediaRow.id.in_(ids)))
