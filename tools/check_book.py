"""Check a rendered book: every chapter page exists, shows figures, carries
no error output, and its widgets have their state and the vendored manager.

Usage: python tools/check_book.py _build/html
"""
import re
import sys
from pathlib import Path


def check(html_dir: Path) -> list[str]:
    problems = []
    toc = Path("_toc.yml").read_text()
    chapters = re.findall(r"file:\s*(book/\d\d_\S+)", toc)
    for chapter in chapters:
        page = html_dir / f"{chapter}.html"
        if not page.exists():
            problems.append(f"{page} missing")
            continue
        text = page.read_text(encoding="utf-8")
        if "<img" not in text:
            problems.append(f"{page}: no figure")
        if 'class="output traceback' in text or "Traceback (most recent call last)" in text:
            problems.append(f"{page}: shows a Python error")
        remote = re.findall(r'<script[^>]*src="(https?://[^"]+)"', text)
        if remote:
            problems.append(f"{page}: loads scripts from the internet: {remote}")
        if "application/vnd.jupyter.widget-view+json" in text:
            for needed in ("application/vnd.jupyter.widget-state+json",
                           "_static/require.js", "_static/embed-amd.js"):
                if needed not in text:
                    problems.append(f"{page}: widget without {needed}")
            if "cdn.jsdelivr" in text or "cdnjs" in text:
                problems.append(f"{page}: loads widget code from a CDN")
    return problems


if __name__ == "__main__":
    found = check(Path(sys.argv[1]))
    for line in found:
        print("book check:", line)
    print(f"book check: {'FAILED' if found else 'ok'} ({sys.argv[1]})")
    sys.exit(1 if found else 0)
