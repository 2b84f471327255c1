"""Copy every examples/*.py file into the docs blocks marked ``<!-- example: examples/x.py -->``.

Run after editing an example (``python scripts/include_examples.py``); tests/test_docs.py
fails while a docs block differs from its file.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"(<!-- example: (examples/[\w.]+) -->\n```python\n)(.*?)(```\n)", re.S)


def main() -> None:
    for page in sorted((ROOT / "docs").glob("*.md")):
        text = page.read_text()
        new = BLOCK.sub(lambda m: m[1] + (ROOT / m[2]).read_text() + m[4], text)
        if new != text:
            page.write_text(new)
            print(f"updated {page.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
