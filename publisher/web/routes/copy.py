"""`POST /api/overrides/count`: each override counted the way its platform counts it.

The dashboard's live counter asks here instead of re-implementing Weibo's
字 or Mastodon's URL-as-23 rule in JavaScript: the answer comes from the
very `Channel.measure_override` that `publish` checks with, so the counter
and the 422 can never disagree. Only what the count depends on is needed
(the article's id and url, for the tracked link), so the counter works
while the rest of the form is still empty.
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from channels import overrides
from publisher.domain.article import Article, parse_overrides
from publisher.domain.errors import InputError
from publisher.web.context import CurrentRuntime
from publisher.web.errors import documented_errors
from publisher.worker.runtime import Runtime

#: The link counted while the form has no url yet: any URL of ≤ 140 bytes weighs the same.
PLACEHOLDER_URL = "https://example.org/"


class OverrideCountIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(default="article", max_length=128, description="the article id ({id} in `utm`)")
    url: str = Field(default=PLACEHOLDER_URL, max_length=2000, description="the article's url")
    overrides: dict[str, dict[str, str | None]] = Field(
        description="per channel name: {key: text}, as in an article"
    )


class OverrideCount(BaseModel):
    key: str
    used: int | None = None
    limit: int | None = None
    unit: str | None = None
    counts: str = Field(default="", description="what the count covers beyond the text")
    fits: bool
    problem: str | None = None


#: Reads: behind a token when `PUBLISHER_READ_REQUIRES_TOKEN` (`create_app` decides).
reads = APIRouter()


@reads.post(
    "/api/overrides/count",
    response_model=dict[str, list[OverrideCount]],
    responses=documented_errors(413, 422),
    tags=["articles"],
    summary="Count each override in its platform's units, as publishing will",
)
def count(body: OverrideCountIn, runtime: CurrentRuntime) -> dict[str, list[OverrideCount]]:
    url = body.url if body.url.startswith(("http://", "https://")) else PLACEHOLDER_URL
    given = parse_overrides(body.overrides)
    article = Article(id=body.id or "article", url=url, title="", body_html="", summary="",
                      overrides=given)  # fmt: skip
    return {name: _counts(runtime, name, article) for name in given}


def _counts(runtime: Runtime, name: str, article: Article) -> list[OverrideCount]:
    channel = runtime.channels.get(name)
    if channel is None:
        known = ", ".join(sorted(runtime.channels))
        return [OverrideCount(key="*", fits=False, problem=f"no such channel ({known})")]
    found: list[OverrideCount] = []
    for key, value in article.overrides[name].items():
        try:
            measured = overrides.measure_one(channel, article, key, value)
        except InputError as exc:
            found.append(OverrideCount(key=key, fits=False, problem=exc.problem))
            continue
        if measured is None:
            found.append(OverrideCount(key=key, fits=True))
            continue
        problem = None if measured.fits else measured.problem()
        found.append(OverrideCount(**measured.to_json(), problem=problem))  # type: ignore[arg-type]
    return found
