"""`llm-recipe push MODEL_DIR REPO_ID`: the Hub-ready folder (`folders.export_model`, to a temp
folder) uploaded with `huggingface_hub` to a model repo, private unless asked otherwise.

    push(model_dir, repo_id, private=True, dry_run=False, adapter_only=False, license=None)

`dry_run` builds the folder and returns what would be uploaded (files with sizes, the card) and
uploads nothing. Offline (HF_HUB_OFFLINE=1) or a hub that cannot be reached is one line naming the
repo, with nothing uploaded. The endpoint is huggingface_hub's: HF_ENDPOINT (a local hub in the tests).
The token is huggingface_hub's own (HF_TOKEN or `hf auth login`); it is never written anywhere.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .folders import export_model
from .gguf_export import ExportError


class PushError(ExportError):
    """The upload did not happen; one line saying why."""


def push(model_dir: str | os.PathLike, repo_id: str, *, private: bool = True, dry_run: bool = False,
         adapter_only: bool = False, license: str | None = None, commit_message: str | None = None) -> dict:
    from huggingface_hub import HfApi, constants

    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise PushError(f"{repo_id}: a repo id is OWNER/NAME")
    if not dry_run and constants.HF_HUB_OFFLINE:
        raise PushError(f"push {repo_id}: offline (HF_HUB_OFFLINE is set): nothing uploaded; --dry-run shows what "
                        "would be")
    with tempfile.TemporaryDirectory(prefix="llm-recipe-push-") as tmp:
        folder = Path(tmp) / "model"
        export_model(model_dir, folder, "hub-folder", adapter_only=adapter_only, license=license)
        for bookkeeping in ("export_report.json", "complete.json"):  # ours, not the model's
            (folder / bookkeeping).unlink(missing_ok=True)
        files = {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file()}
        report = {"repo_id": repo_id, "private": private, "files": files,
                  "card": (folder / "README.md").read_text(encoding="utf-8"), "uploaded": False}
        if dry_run:
            return report
        api = HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None)
        try:
            url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
            commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model",
                                       commit_message=commit_message or f"llm-recipe: {Path(model_dir)}")
        except Exception as e:  # noqa: BLE001 - network / auth / hub errors: one line, not a traceback
            first = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
            raise PushError(f"push {repo_id}: {type(e).__name__}: {first[:300]} (nothing uploaded)") from None
        return {**report, "uploaded": True, "url": str(url), "commit": getattr(commit, "oid", None)}
