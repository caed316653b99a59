"""The `voice` channel: every article read aloud, an episode of the newsroom's podcast.

It is a feed channel, so it goes through the same pipeline as `rss`: the
payload is formatted once at publish time (the script the engine will read,
shown by `preview` with its estimated duration), a delivery "sends" by
making the episode's files, and the podcast document is rebuilt by
`publisher.feeds` from the delivered payloads like any feed.

Sending synthesises the script, encodes and tags the MP3 and keeps three
files in the media store, all served under /media/: the MP3 (named by its
content hash, so the enclosure URL changes whenever the audio does and is
never reused), the transcript, and a small manifest named by the hash of the
episode's payload. The rebuild finds each episode's audio through that
manifest, and a retried send that finds it reuses the audio instead of
synthesising again. The receipt's remote id is the manifest, which is how a
correction (a new payload) removes the audio it supersedes and a retraction
removes the episode's files.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime
from typing import Any, ClassVar

from channels.base import ChannelContext, Receipt, SendAttempt
from channels.feed import FeedChannel, FeedDocument, FeedItem
from channels.images import JPEG, PNG, fetch_image
from channels.voice.audio import (
    ID3_LANGUAGES,
    MAX_BITRATE,
    MIN_BITRATE,
    EpisodeTags,
    assemble,
    encode_mp3,
    measure_seconds,
    tag_mp3,
)
from channels.voice.engines import ENGINES, SpeechEngine, build_engine, primary_language
from channels.voice.podcast import Episode, Show, generate_artwork, render_podcast
from channels.voice.script import (
    Piece,
    build_script,
    estimate_seconds,
    script_text,
    spoken_language,
)
from publisher.config.settings import ChannelConfig
from publisher.domain.article import Article
from publisher.domain.errors import ConfigError, DeliveryError, NotFound, PermanentError

log = logging.getLogger(__name__)

MAX_EPISODE_BYTES = 60 * 1024 * 1024  # two hours at 64 kbit/s
MAX_COVER_BYTES = 2 * 1024 * 1024
#: Channel options that change how the audio sounds: part of the episode's identity.
VOICE_OPTIONS = ("rate", "voice", "voices", "model", "piper_model")


class VoiceChannel(FeedChannel):
    """`[channels.NAME] type = "voice"`: options `engine` (espeak, piper, http),
    `bitrate` (64–96), `path` (the document, default podcast.xml), `image`,
    `category`, `subcategory`, `explicit`, `author`, `owner_email`, `itunes_type`,
    `locked`; for http `base_url`, `api_key_env`, `model`, `voice`/`voices`;
    for espeak `rate` (words a minute)."""

    type_name: ClassVar[str] = "voice"

    def __init__(self, config: ChannelConfig, context: ChannelContext) -> None:
        super().__init__(config, context)
        self.engine = build_engine(config)  # an unknown engine stops the matrix loading
        self._engines: dict[str, SpeechEngine] = {self.engine.name: self.engine}
        self.bitrate = int(config.option("bitrate", MIN_BITRATE))
        if not MIN_BITRATE <= self.bitrate <= MAX_BITRATE:
            raise ConfigError(
                f"channels.{config.name}.bitrate: {self.bitrate} is outside "
                f"{MIN_BITRATE}–{MAX_BITRATE} kbit/s"
            )
        if not isinstance(config.option("explicit", False), bool):
            raise ConfigError(f"channels.{config.name}.explicit: must be true or false")
        if config.option("itunes_type", "episodic") not in ("episodic", "serial"):
            raise ConfigError(f"channels.{config.name}.itunes_type: episodic or serial")
        self._artwork: str | None = None

    def filenames(self) -> tuple[str, ...]:
        return (str(self.config.option("path", "podcast.xml")),)

    # -- format: pure --------------------------------------------------------------

    def format(self, article: Article) -> dict[str, Any]:
        payload = super().format(article)
        payload.pop("content_html")  # the script is what this channel carries
        language = spoken_language(article, self.context.settings.feeds.language)
        pieces = build_script(article, language)
        payload["episode"] = {
            "channel": self.name,
            "guid": payload["guid"],
            "title": article.title,
            "language": language,
            "date": payload["published"],
            "cover": article.cover_image,
            "engine": self.engine.name,
            "options": {k: self.config.option(k) for k in VOICE_OPTIONS if self.config.option(k)},
            "bitrate": self.bitrate,
            "script": [[piece.text, piece.pause] for piece in pieces],
        }
        payload["estimated_seconds"] = estimate_seconds(pieces, language)
        return payload

    # -- send: synthesise and store ------------------------------------------------

    def update(
        self, remote_id: str, post: dict[str, Any], attempt: SendAttempt | None = None
    ) -> Receipt:
        """Make (or find) the episode's files; a superseded episode's files go.

        A correction removes the audio it replaces at once: the old words were
        wrong, so they should not stay downloadable.
        """
        manifest_ref, manifest = self.episode_files(post["episode"])
        if remote_id != manifest_ref:
            keep = {manifest_ref, manifest["audio"], manifest["transcript"]}
            self._remove_episode(remote_id, keep=keep)
        return Receipt(remote_id=manifest_ref, remote_url=self.public_media_url(manifest["audio"]))

    def delete(self, remote_id: str) -> None:
        """Remove an episode's audio, transcript and manifest (a retraction)."""
        self._remove_episode(remote_id, keep=set())

    def _remove_episode(self, manifest_ref: str, *, keep: set[str]) -> None:
        manifest = self._manifest(manifest_ref)
        if manifest is None or self.context.delete_media is None:
            return  # already gone, or not an episode (a feed guid)
        files = [manifest["audio"], manifest["transcript"], manifest_ref]
        self.context.delete_media([ref for ref in files if ref not in keep])

    def episode_audio(self, remote_id: str | None) -> str | None:
        """The MP3's media reference for a delivered episode (its receipt's remote id)."""
        manifest = self._manifest(remote_id) if remote_id else None
        return str(manifest["audio"]) if manifest else None

    def episode_files(self, episode: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The manifest reference and content for an episode, synthesising it if new."""
        key = episode_key(episode)
        manifest_ref = f"media/{key}.json"
        found = self._manifest(manifest_ref)
        if found is not None:
            return manifest_ref, found  # an earlier attempt made it
        if self.context.save_media is None:
            raise PermanentError("the voice channel needs the media store to keep its audio")
        pieces = [Piece(str(text), float(pause)) for text, pause in episode["script"]]
        mp3 = self.synthesise(episode, pieces)
        transcript = script_text(pieces).encode()
        manifest = {
            "audio": self.context.save_media(mp3, "audio/mpeg", ".mp3"),
            "bytes": len(mp3),
            "seconds": round(measure_seconds(mp3), 3),
            "transcript": self.context.save_media(
                transcript, "text/plain; charset=utf-8", ".txt", name=key
            ),
            "engine": episode["engine"],
        }
        body = json.dumps(manifest, sort_keys=True).encode()
        self.context.save_media(body, "application/json", ".json", name=key)
        return manifest_ref, manifest

    def synthesise(self, episode: dict[str, Any], pieces: list[Piece]) -> bytes:
        """The tagged MP3 of the episode's script."""
        engine = self._engine(str(episode["engine"]))
        language = str(episode["language"])
        voice = engine.voice_for(language)
        pcm = assemble((engine.synthesize(piece.text, voice), piece.pause) for piece in pieces)
        cover, cover_type = self._cover(episode.get("cover"))
        tags = EpisodeTags(
            title=str(episode["title"]),
            artist=str(self.config.option("author") or self.context.settings.feeds.title),
            date=(episode.get("date") or "")[:10] or None,
            language=ID3_LANGUAGES.get(primary_language(language)),
            guid=str(episode["guid"]),
            cover=cover,
            cover_type=cover_type,
        )
        mp3 = tag_mp3(encode_mp3(pcm, int(episode["bitrate"])), tags)
        if len(mp3) > MAX_EPISODE_BYTES:
            raise PermanentError(
                f"the episode would be {len(mp3) / 1e6:.0f} MB, more than the "
                f"{MAX_EPISODE_BYTES / 1e6:.0f} MB a voice episode may take"
            )
        return mp3

    def _engine(self, name: str) -> SpeechEngine:
        """The engine named when the article was formatted (what preview promised)."""
        if name not in self._engines:
            if name not in ENGINES:
                raise PermanentError(f"the speech engine {name!r} is no longer known")
            try:
                self._engines[name] = ENGINES[name](self.config)
            except ConfigError as exc:
                raise PermanentError(str(exc)) from None
        return self._engines[name]

    def _cover(self, ref: str | None) -> tuple[bytes | None, str]:
        """The cover for the ID3 tag; an episode goes out without one rather than wait."""
        if not ref:
            return None, JPEG
        try:
            image = fetch_image(
                ref, self.context, max_bytes=MAX_COVER_BYTES, allowed_types=frozenset({JPEG, PNG})
            )
        except DeliveryError as exc:
            log.warning("voice %s: cover left out of the ID3 tag: %s", self.name, exc.reason)
            return None, JPEG
        return image.data, image.content_type

    def _manifest(self, ref: str) -> dict[str, Any] | None:
        if not ref.startswith("media/") or self.context.read_media is None:
            return None
        try:
            data, _ = self.context.read_media(ref)
        except NotFound:
            return None
        manifest: dict[str, Any] = json.loads(data)
        return manifest

    # -- the podcast document ------------------------------------------------------

    def render(self, items: list[FeedItem], built_at: datetime) -> list[FeedDocument]:
        episodes: list[Episode] = []
        for item in items:
            episode = item.get("episode")
            manifest = self._manifest(f"media/{episode_key(episode)}.json") if episode else None
            if manifest is None and episode and self.context.save_media is not None:
                # The rebuild is what delivers a feed item: the audio is made here,
                # once (its manifest is found by later builds); an engine error
                # fails this episode's delivery alone (`render_without_bad_items`).
                _, manifest = self.episode_files(episode)
            if manifest is None:
                log.warning("voice %s: no audio for %s, left out", self.name, item.get("guid"))
                continue
            published = item.get("published")
            episodes.append(
                Episode(
                    guid=str(item.get("guid")),
                    title=str(item.get("title")),
                    url=str(item.get("url")),
                    summary=item.get("summary"),
                    published=datetime.fromisoformat(published) if published else item.updated,
                    updated=item.updated,
                    audio_url=str(self.public_media_url(manifest["audio"])),
                    audio_bytes=int(manifest["bytes"]),
                    seconds=float(manifest["seconds"]),
                    transcript_url=self.public_media_url(manifest["transcript"]),
                    language=item.get("language") or episode.get("language"),
                    image_url=item.get("image"),
                )
            )
        (filename,) = self.filenames()
        body = render_podcast(self.show(filename, episodes), episodes, built_at)
        return [FeedDocument(filename, "application/rss+xml; charset=utf-8", body)]

    def show(self, filename: str, episodes: list[Episode]) -> Show:
        feeds, option = self.context.settings.feeds, self.config.option
        author = str(option("author") or feeds.title)
        language = option("language") or feeds.language
        language = language or (episodes[0].language if episodes else None) or "en"
        return Show(
            title=str(option("title") or feeds.title),
            description=str(option("description") or feeds.description),
            home_page_url=feeds.home_page_url,
            feed_url=self.feed_url(filename),
            image_url=self.artwork_url(),
            language=str(language).lower(),
            author=author,
            category=str(option("category", "News")),
            subcategory=option("subcategory", "Daily News") or None,
            explicit=bool(option("explicit", False)),
            owner_email=option("owner_email"),
            kind=str(option("itunes_type", "episodic")),
            locked=bool(option("locked", True)),
        )

    def artwork_url(self) -> str:
        """`image` (a URL, or a JPEG/PNG next to the matrix file), else art made from
        the newsroom's name; kept in the media store once per process."""
        if self._artwork is None:
            value = self.config.option("image")
            if value and "://" in str(value):
                self._artwork = str(value)
                return self._artwork
            if self.context.save_media is None:
                raise PermanentError("the voice channel needs the media store for its artwork")
            if value:
                path = self.context.settings.config_path.parent / str(value)
                suffix = ".png" if path.suffix.lower() == ".png" else ".jpg"
                kind = PNG if suffix == ".png" else JPEG
                ref = self.context.save_media(path.read_bytes(), kind, suffix)
            else:
                title = str(self.config.option("title") or self.context.settings.feeds.title)
                ref = self.context.save_media(generate_artwork(title), JPEG, ".jpg")
            self._artwork = str(self.public_media_url(ref))
        return self._artwork


def episode_key(episode: dict[str, Any]) -> str:
    """The hash of everything that shapes the audio: the same payload, the same episode."""
    canonical = json.dumps(episode, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(b"voice-episode:" + canonical).hexdigest()
