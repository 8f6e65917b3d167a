"""`python -m swiftops.ls`: what can be run — named sweeps, experiments and config groups, each
with the first line of its description (like `tune ls`)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from swiftops.paths import conf_dir, sweeps_dir


def describe(path: Path, width: int = 100) -> str:
    """The first sentence of a config's leading comment (its `# python -m ...` line skipped),
    shortened to about `width` characters at a word boundary."""
    words: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.strip()
        if not text.startswith("#"):
            if text or words:
                break
            continue
        text = text.lstrip("#").strip()
        if text.startswith(("@package", "python -m")):
            continue
        if not text:
            if words:
                break  # the first paragraph ends at an empty comment line
            continue
        words.extend(text.split())
    paragraph = " ".join(words)
    sentence = re.split(r"(?<=[.!?])\s", paragraph, maxsplit=1)[0]
    if len(sentence) <= width:
        return sentence
    return sentence[:width].rsplit(" ", 1)[0].rstrip(",;:(") + " ..."


def listing() -> list[tuple[str, list[tuple[str, str]]]]:
    """(section, [(how to use it, description)]) for sweeps, experiments and every group."""
    sections = [
        ("named sweeps", [(f"+sweep={p.stem}", describe(p)) for p in sorted(sweeps_dir().glob("*.yaml"))])
    ]
    root = conf_dir()
    groups = sorted(p for p in root.iterdir() if p.is_dir())
    for group in sorted(groups, key=lambda p: (p.name != "experiment", p.name)):
        entries = [(f"{group.name}={p.stem}", describe(p)) for p in sorted(group.glob("*.yaml"))]
        sections.append((f"{group.name} (conf/{group.name}/)", entries))
    return sections


def main(argv: list[str] | None = None) -> int:
    for title, entries in listing():
        print(f"{title}:")
        width = max((len(name) for name, _ in entries), default=0)
        for name, text in entries:
            print(f"  {name.ljust(width)}  {text}")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
