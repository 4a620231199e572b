"""The shapes of the JSON API, as pydantic models: what the OpenAPI document shows.

Request models are deliberately loose where a view parses the value itself with
a clearer message (``k``, ``box``, ``metadata`` of a search: app/search/query.py),
so the document tells clients the fields and the view keeps the one parser.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from spectree.model_adapter.pydantic_adapter import BaseFile

# -- errors --------------------------------------------------------------------------------


class ErrorBody(BaseModel):
    status: int
    title: str
    message: str = Field(description="What happened and what to do, for people.")


class Error(BaseModel):
    """Every error of the API, whatever its status."""

    error: ErrorBody


# -- search ---------------------------------------------------------------------------------

_SEARCH_DOC = {
    "k": "results per page, 1 to MAX_K (default 10)",
    "offset": "skip this many matches; offset + k at most 1000",
    "label": "only these labels (repeat for several)",
    "metadata": 'a JSON object of metadata conditions, e.g. {"brand": ["Arla"]}',
    "min_score": "only matches with a cosine similarity at or above this, 0 to 1",
    "box": "x0,y0,x1,y1: search with this region, as fractions of the photo",
    "per_label": "1: at most one image per label",
}


GALLERY_DOC = "the gallery to work on, by name (default: the default gallery)"


class SearchOptions(BaseModel):
    k: str | None = Field(None, description=_SEARCH_DOC["k"])
    offset: str | None = Field(None, description=_SEARCH_DOC["offset"])
    label: list[str] = Field(default_factory=list, description=_SEARCH_DOC["label"])
    metadata: str | None = Field(None, description=_SEARCH_DOC["metadata"])
    min_score: str | None = Field(None, description=_SEARCH_DOC["min_score"])
    box: str | None = Field(None, description=_SEARCH_DOC["box"])
    per_label: str | None = Field(None, description=_SEARCH_DOC["per_label"])
    gallery: str | None = Field(None, description=GALLERY_DOC)


class SearchByKey(SearchOptions):
    key: str = Field(description="the gallery image to search like: <sha256>.<ext>")


class SearchByUpload(SearchOptions):
    image: BaseFile = Field(description="the query photo (PNG, JPEG, WebP, GIF, BMP, TIFF)")


class Match(BaseModel):
    rank: int
    key: str
    score: float
    label: str | None
    image_url: str
    thumb_url: str
    metadata: dict[str, Any]
    copy_: bool = Field(False, alias="copy", description="a copy by the gallery's calibrated "
                        "decision (score, then verification): the same picture, not only a "
                        "similar one")


class SearchResponse(BaseModel):
    results: list[Match]
    query: dict[str, Any] | None = Field(description="the parameters as understood")
    next_offset: int | None = Field(description="offset of the next page; null at the end")
    empty_reason: str | None
    timings_ms: dict[str, float]


class LabelCount(BaseModel):
    label: str
    count: int


class LabelsResponse(BaseModel):
    labels: list[LabelCount]


class HealthResponse(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: Literal["ok", "unavailable"]
    model: dict[str, Any]
    milvus: dict[str, Any]
    storage: dict[str, Any]


# -- gallery management -----------------------------------------------------------------------


class ImagesUpload(BaseModel):
    image: list[BaseFile] = Field(description="one or more images or .zip archives of images")

    @field_validator("image", mode="before")
    @classmethod
    def _one_or_more(cls, value: Any) -> Any:
        """spectree hands over a single file as itself, several as a list."""
        return value if isinstance(value, list) else [value]

    label: str | None = Field(None, description="the label of every image sent")
    metadata: str | None = Field(
        None, description='a JSON object stored with every image, e.g. {"sku": "A-12"}'
    )
    gallery: str | None = Field(None, description=GALLERY_DOC)


class NearDuplicate(BaseModel):
    key: str
    score: float


class Outcome(BaseModel):
    name: str
    status: Literal["added", "duplicate", "rejected"]
    key: str | None
    reason: str | None
    near_duplicate_of: NearDuplicate | None = Field(
        None, description="the gallery image this one is a copy of (by the gallery's "
        "calibrated copy decision), if any")


class UploadReport(BaseModel):
    results: list[Outcome]
    added: int
    duplicates: int
    rejected: int


class ImagesQuery(BaseModel):
    after: str | None = Field(None, description="the last key of the previous page")
    limit: str | None = Field(None, description="images per page, 1 to 1000")
    label: list[str] = Field(default_factory=list, description="only these labels")
    gallery: str | None = Field(None, description=GALLERY_DOC)


class Image(BaseModel):
    key: str
    label: str | None
    metadata: dict[str, Any]
    image_url: str
    thumb_url: str


class ImagesPage(BaseModel):
    images: list[Image]
    next_after: str | None = Field(description="pass as after= for the next page; null at the end")


class ImageEdit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str | None = None
    metadata: dict[str, str | int | float | bool | None] | None = Field(
        None, description="replaces the image's metadata"
    )


class Deleted(BaseModel):
    deleted: str


# -- jobs ------------------------------------------------------------------------------------


class ReindexRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(
        None, description="a hub id or a model folder on the server; default: the configured one"
    )


class Job(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    kind: str
    phase: str
    active: bool
    model: str
    total: int
    done: int
    failed: int
    rate: float
    eta_s: float | None
    duration_s: float
    error: str


class JobResponse(BaseModel):
    model_config = ConfigDict(extra="allow")

    job: Job


# -- bucket events ---------------------------------------------------------------------------


class HookReply(BaseModel):
    """``POST /api/hooks/s3``: events queued for a registered source, and the others."""

    queued: int
    ignored: int
