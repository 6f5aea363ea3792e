"""Shared by the benchmark scripts: the machine's CPU name and one "## " section of docs/benchmarks.md."""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_name() -> str:
    """Return the CPU model from /proc/cpuinfo, else what the platform module reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def write_section(doc: Path, title: str, section: str) -> None:
    """Replace the section whose heading line is ``title`` in ``doc``, or append it; other sections stay."""
    text = doc.read_text(encoding="utf-8") if doc.exists() else "# Benchmarks\n"
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == title), None)
    if start is None:
        new_text = text.rstrip("\n") + "\n\n" + section
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        tail = lines[end:]
        new_text = "\n".join(lines[:start] + section.rstrip("\n").splitlines() + ([""] + tail if tail else []))
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(new_text.rstrip("\n") + "\n", encoding="utf-8")


def publish(section: str, doc: Path | None, title: str) -> None:
    """Print ``section`` and, when ``doc`` is given, write it there under ``title``."""
    print()
    print(section)
    if doc is not None:
        write_section(doc, title, section)
        print(f"wrote section {title!r} to {doc}")
