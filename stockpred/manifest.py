"""Small JSON manifests that say what a stage read and wrote.

A manifest records, for each table, its files, row count and a content hash, plus
the config hash and package versions, so `refresh` can tell which later stage is
stale and a result can be traced back to its inputs. Never holds secrets.
"""

from __future__ import annotations

import hashlib
import json
import platform
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow.parquet as pq

from stockpred.config import Config, config_as_json
from stockpred.data.store import RawStore, atomic_write_text

if TYPE_CHECKING:
    from stockpred.layout import Paths

_PACKAGES = ("stockpred", "pandas", "numpy", "pyarrow", "tushare")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def config_hash(config: Config) -> str:
    return hashlib.sha256(config_as_json(config).encode("utf-8")).hexdigest()


def section_hash(section) -> str:
    """Hash of one config section, so a stage reruns only when its own settings change."""
    text = json.dumps(section.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def table_summary(store: RawStore, name: str) -> dict:
    """Files, rows and a content hash of one stored table (the hash changes iff a file does)."""
    digest = hashlib.sha256()
    rows = 0
    files = store.files(name)
    for path in files:
        digest.update(path.name.encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
        rows += pq.ParquetFile(path).metadata.num_rows
    return {"files": len(files), "rows": rows, "sha256": digest.hexdigest()}


def read_manifest(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def upstream(paths: "Paths") -> dict[str, str | None]:
    """When the features and the feature selection that later stages read were written;
    a stage records this, and `refresh` reruns it when it changes."""
    return {"features": (read_manifest(paths.features_manifest) or {}).get("finished_at"),
            "selection": (read_manifest(paths.selected_features) or {}).get("finished_at")}


def write_manifest(path: Path, payload: dict) -> None:
    atomic_write_text(Path(path), json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
