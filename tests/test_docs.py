"""The documentation holds together: every relative link in README.md and docs/**/*.md points to a file (and
heading) that exists, every page under docs/ is reachable from docs/index.md, and every hand-written page
links back to the index or to another page, so a reader never lands on a dead end."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
INDEX = DOCS / "index.md"
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
CODE_SPAN = re.compile(r"`[^`\n]*`")


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def links_in(text: str) -> list[str]:
    """The link targets of Markdown text, outside code blocks and code spans."""
    return LINK.findall(CODE_SPAN.sub("", FENCE.sub("", text)))


def links(page: Path) -> list[str]:
    return links_in(page.read_text(encoding="utf-8"))


def is_external(target: str) -> bool:
    return bool(re.match(r"^[a-z][a-z0-9+.-]*:", target)) or target.startswith("//")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every anchor GitHub gives ``page``'s headings (a repeated heading gets -1, -2, ...)."""
    seen: dict[str, int] = {}
    out = set()
    for line in FENCE.sub("", page.read_text(encoding="utf-8")).splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            base = slug(m.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    return out


def resolve(page: Path, target: str) -> tuple[Path, str]:
    path, _, anchor = target.partition("#")
    return ((page.parent / unquote(path)).resolve() if path else page), anchor


def test_the_link_pattern_finds_links_and_skips_code():
    text = "[a](x.md) ![img](d/p.gif) [b](y.md#sec \"title\") `[c](no.md)` [w](https://e.org)\n```\n[d](no.md)\n```\n"
    assert links_in(text) == ["x.md", "d/p.gif", "y.md#sec", "https://e.org"]
    assert slug("Distillation: objectives, SDW and `presets`") == "distillation-objectives-sdw-and-presets"
    assert slug("Run folders & resume") == "run-folders--resume"


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    broken = []
    for target in links(page):
        if is_external(target):
            continue
        path, anchor = resolve(page, target)
        if not path.exists():
            broken.append(f"{target}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{target}: no heading with anchor #{anchor} in {path.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_every_docs_page_is_reachable_from_the_index():
    assert INDEX.is_file()
    seen, todo = {INDEX}, [INDEX]
    while todo:
        page = todo.pop()
        for target in links(page):
            if is_external(target):
                continue
            path = resolve(page, target)[0]
            if path.suffix == ".md" and path.is_file() and DOCS in path.parents and path not in seen:
                seen.add(path)
                todo.append(path)
    unreachable = sorted(str(p.relative_to(ROOT)) for p in DOCS.rglob("*.md") if p.resolve() not in seen)
    assert not unreachable, f"not reachable from docs/index.md: {unreachable}"


def test_the_readme_links_the_index_and_every_page_of_it():
    readme = {resolve(ROOT / "README.md", t)[0] for t in links(ROOT / "README.md") if not is_external(t)}
    index = {resolve(INDEX, t)[0] for t in links(INDEX) if not is_external(t)}
    topics = {p for p in index if p.parent == DOCS and p.suffix == ".md"}
    assert INDEX in readme and len(topics) >= 8
    assert not topics - readme, f"topic pages the README does not link: {sorted(p.name for p in topics - readme)}"


@pytest.mark.parametrize("page", sorted(DOCS.glob("*.md")), ids=lambda p: p.name)
def test_hand_written_pages_lead_on(page):
    """A top-level docs page links back to the index (the generated tables under docs/*/ are leaves)."""
    if page == INDEX:
        return
    targets = {resolve(page, t)[0] for t in links(page) if not is_external(t)}
    assert INDEX in targets, f"{page.name} does not link back to index.md"
