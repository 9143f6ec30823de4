"""Execute chapter notebooks in place, keeping widget state for the static book.

Usage: python tools/run_notebooks.py book/01_face_retrieval.ipynb [...]
The profile and dataset come from DFH_PROFILE / DFH_DATASET (see the Makefile).
Cells tagged ``skip-execution`` (GPU-only) are left as they are.
"""
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def run(path: Path, timeout: int = 3600) -> float:
    nb = nbformat.read(path, as_version=4)
    skipped = [c for c in nb.cells if "skip-execution" in c.get("metadata", {}).get("tags", [])]
    for cell in skipped:  # nbclient has no tag filter: hide them during the run
        cell.cell_type, cell["_was_code"] = "raw", True
    start = time.perf_counter()
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            store_widget_state=True,
                            resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()
    finally:
        for cell in skipped:
            cell.cell_type = "code"
            del cell["_was_code"]
    nbformat.write(nb, path)
    return time.perf_counter() - start


def main(paths):
    profile = os.environ.get("DFH_PROFILE", "(default)")
    dataset = os.environ.get("DFH_DATASET") or "(default)"
    for name in paths:
        seconds = run(Path(name))
        print(f"executed {name} in {seconds:.0f} s (profile {profile}, dataset {dataset})",
              flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
