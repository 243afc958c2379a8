"""The one label- and file-safe form of a dataset name, shared by the task graph (task labels) and the steps
(per-dataset filter files are named by it): `opus_Books/v1` -> `opus_Books_v1`. Standard library only: the
graph's code imports it too."""

import hashlib
import re

MAX_SLUG = 60


def dataset_slug(name: str) -> str:
    """Non-alphanumeric runs become `_`; a slug over 60 characters keeps 50 and a hash of the whole name, so
    that two long names differing only at the end still get two labels."""
    slug = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")
    if len(slug) > MAX_SLUG:
        slug = f"{slug[:50]}_{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    return slug
