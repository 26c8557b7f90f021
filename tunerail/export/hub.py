"""``--push-to-hub REPO``: upload a verified export folder with ``huggingface_hub``.

The upload plan (which files, how many bytes, into which repo) is computed first and recorded, so
an offline test can check what would be uploaded without the network, and a refused export never
reaches the Hub: only a folder whose ``export.json`` says ``ok`` (or a recorded ``--force``) is pushed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunerail.errors import Problem, TunerailError


def upload_plan(folder: Path, repo_id: str) -> dict[str, Any]:
    """Every file that would be uploaded, relative to ``folder``, with its size."""
    files = sorted(str(f.relative_to(folder)) for f in folder.rglob("*") if f.is_file())
    if "README.md" not in files:
        raise TunerailError(
            Problem("no model card (README.md) in the export folder", file=str(folder), fix="export again with `tunerail export`")
        )
    return {"repo_id": repo_id, "folder": str(folder), "files": files, "bytes": sum((folder / f).stat().st_size for f in files)}


def push_to_hub(folder: Path, repo_id: str, *, private: bool = True, token: str | None = None, api: Any = None) -> dict[str, Any]:
    """Create the repo (private by default) and upload the folder in one commit; returns the plan."""
    plan = upload_plan(folder, repo_id)
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model", commit_message="tunerail export (verified)")
    plan["commit"] = str(getattr(commit, "oid", commit))
    return plan
