"""Loads Schemas/json into a `referencing` registry and validates instances against it.

Shared by check_schemas.py (which checks the schemas themselves) and test_contract.py
(which checks the server's messages). Every schema's `$id` is its path relative to
Schemas/json, so a `$ref` such as "../defs.json#/$defs/id" resolves exactly as it would
against the files on disk.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

REPO = Path(__file__).resolve().parents[2]
SCHEMA_DIR = REPO / "Schemas" / "json"
INDEX_FILE = "index.json"


def schema_files() -> list[str]:
    """Every schema file, as its path relative to Schemas/json (index.json is not a schema)."""
    return sorted(
        p.relative_to(SCHEMA_DIR).as_posix()
        for p in SCHEMA_DIR.rglob("*.json")
        if p.relative_to(SCHEMA_DIR).as_posix() != INDEX_FILE
    )


def load_json(rel: str):
    return json.loads((SCHEMA_DIR / rel).read_text(encoding="utf-8"))


@lru_cache(maxsize=None)
def index() -> dict:
    return load_json(INDEX_FILE)


@lru_cache(maxsize=None)
def schemas() -> dict[str, dict]:
    return {rel: load_json(rel) for rel in schema_files()}


@lru_cache(maxsize=None)
def registry() -> Registry:
    resources: list[tuple[str, Resource]] = [
        (rel, Resource.from_contents(contents, default_specification=DRAFT202012))
        for rel, contents in schemas().items()
    ]
    return Registry().with_resources(resources).crawl()


@lru_cache(maxsize=None)
def validator(rel: str) -> Draft202012Validator:
    return Draft202012Validator(schemas()[rel], registry=registry())


def errors(rel: str, instance) -> list:
    return list(validator(rel).iter_errors(instance))


def validate(rel: str, instance) -> None:
    """Raise AssertionError naming the schema, the failing path and the instance."""
    errs = errors(rel, instance)
    if errs:
        err = best_match(errs)
        path = "/".join(str(p) for p in err.absolute_path) or "(root)"
        shown = json.dumps(instance, ensure_ascii=False)
        if len(shown) > 2000:
            shown = shown[:2000] + "…"
        raise AssertionError(
            f"{rel}: {err.message} at {path} (schema path {'/'.join(map(str, err.absolute_schema_path))}; "
            f"{len(errs)} error(s)) in {shown}"
        )
