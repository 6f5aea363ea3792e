"""Settings from environment variables (prefix ROUTING_) and the project's .env file."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from routing_core.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
ENV_PREFIX = "ROUTING_"

# One SQL identifier part, optionally bracketed or quoted; up to three parts
# (database.schema.object). Anything else is rejected before it reaches SQL.
_IDENTIFIER_PART = r'(?:[A-Za-z_][A-Za-z0-9_$#@]*|\[[^\]\[;\'"]+\]|"[^"\[\];\']+")'
_QUALIFIED_IDENTIFIER = re.compile(rf"^{_IDENTIFIER_PART}(?:\.{_IDENTIFIER_PART}){{0,2}}$")


def validate_identifier(name: str) -> str:
    """Return ``name`` if it is an SQL identifier, optionally schema-qualified; else raise ValueError."""
    if not isinstance(name, str) or not _QUALIFIED_IDENTIFIER.match(name.strip()):
        raise ValueError(f"not a valid SQL table or view name: {name!r}")
    return name.strip()


def object_basename(name: str) -> str:
    """Return the last part of a qualified name without brackets: ``dbo.[X]`` → ``X``."""
    last = name.split(".")[-1]
    return last.strip('[]"')


class FeatureSpec(BaseModel):
    """One item-master column used for similarity: its kind and weight (applied after scaling)."""

    name: str
    kind: Literal["category", "number"] = "category"
    weight: float = Field(default=1.0, gt=0)


DEFAULT_FEATURES: list[FeatureSpec] = [
    FeatureSpec(name="PART_TYPE", kind="category", weight=3.0),
    FeatureSpec(name="ITEM_TYPE", kind="category", weight=1.0),
    FeatureSpec(name="ITEM_ACCT", kind="category", weight=0.5),
    FeatureSpec(name="ITEM_GRP1", kind="category", weight=1.5),
    FeatureSpec(name="GROUP1", kind="category", weight=1.0),
    FeatureSpec(name="GROUP2", kind="category", weight=1.0),
    FeatureSpec(name="SealTypeGrup", kind="category", weight=1.5),
    FeatureSpec(name="IN_SEALTYPE_CD", kind="category", weight=0.5),
    FeatureSpec(name="RAW_MATL_KIND", kind="category", weight=1.5),
    FeatureSpec(name="ITEM_MATERIAL", kind="category", weight=2.0),
    FeatureSpec(name="STANDARD_YN", kind="category", weight=0.5),
    FeatureSpec(name="OUTDIAMETER", kind="number", weight=1.0),
    FeatureSpec(name="INDIAMETER", kind="number", weight=0.7),
    FeatureSpec(name="OUTTHICKNESS", kind="number", weight=0.7),
    FeatureSpec(name="IN_SEALSIZE", kind="number", weight=0.5),
]


def _parse_feature(text: str) -> dict[str, Any]:
    """Parse ``NAME[:kind[:weight]]`` into a FeatureSpec mapping."""
    parts = [p.strip() for p in text.split(":")]
    spec: dict[str, Any] = {"name": parts[0]}
    if len(parts) > 1 and parts[1]:
        spec["kind"] = parts[1]
    if len(parts) > 2 and parts[2]:
        spec["weight"] = parts[2]
    return spec


def _split_list(value: Any) -> Any:
    """Accept a list as JSON (``["a","b"]``) or comma-separated text (``a,b``)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"invalid JSON list: {exc.msg}") from None
    return [part.strip() for part in text.split(",") if part.strip()]


class Settings(BaseSettings):
    """All settings of Routing ML. Environment: ``ROUTING_<NAME>``; file: ``<project>/.env``."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=PROJECT_ROOT / ".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
    )

    # data source
    data_source: Literal["sample", "files", "odbc"] = "sample"
    data_dir: Path = PROJECT_ROOT / "data" / "sample"
    sample_items: int = Field(default=20_000, ge=100, le=2_000_000)
    sample_seed: int = 7
    item_view: str = "dbo.BI_ITEM_INFO_VIEW"
    routing_view: str = "dbo.BI_ROUTING_VIEW"
    work_order_view: str = "dbo.BI_WORK_ORDER_RESULTS"
    reference_date: date | None = None
    odbc_connection_string: SecretStr | None = None
    odbc_batch_size: int = Field(default=50_000, ge=1)
    staging_table: str = "dbo.ROUTING_STAGING"

    # model
    features: Annotated[list[FeatureSpec], NoDecode] = Field(default_factory=lambda: list(DEFAULT_FEATURES))
    model_dir: Path = PROJECT_ROOT / "models"
    index_kind: Literal["flat", "hnsw"] = "flat"

    # prediction
    top_k: int = Field(default=10, ge=1, le=200)
    max_candidates: int = Field(default=5, ge=1, le=50)
    similarity_floor: float = Field(default=0.0, ge=-1.0, le=1.0)
    default_lot_size: float = Field(default=1.0, gt=0, le=1_000_000)  # at most timeagg.MAX_LOT_SIZE pieces
    min_actual_orders: int = Field(default=3, ge=1)

    # presentation
    language: Literal["ko", "en"] = "ko"
    export_csv_encoding: Literal["utf-8-sig", "cp949"] = "utf-8-sig"

    @field_validator("features", mode="before")
    @classmethod
    def _parse_features(cls, value: Any) -> Any:
        items = _split_list(value)
        if isinstance(items, list):
            return [_parse_feature(item) if isinstance(item, str) else item for item in items]
        return items

    @field_validator("features")
    @classmethod
    def _unique_features(cls, value: list[FeatureSpec]) -> list[FeatureSpec]:
        if not value:
            raise ValueError("at least one feature column is required")
        names = [f.name for f in value]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"feature columns listed twice: {', '.join(duplicates)}")
        return value

    @field_validator("item_view", "routing_view", "work_order_view", "staging_table")
    @classmethod
    def _check_identifier(cls, value: str) -> str:
        return validate_identifier(value)

    @field_validator("data_dir", "model_dir")
    @classmethod
    def _resolve_path(cls, value: Path) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else (PROJECT_ROOT / path)


def load_settings(**overrides: Any) -> Settings:
    """Read settings, with ``overrides`` taking precedence; raise ConfigError naming the bad setting."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        value = first.get("input")
        shown = "" if field == "odbc_connection_string" else f" (value: {value!r})"
        raise ConfigError(f"Invalid setting {ENV_PREFIX}{field.upper()}: {first['msg']}{shown}") from None
