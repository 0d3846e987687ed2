"""The README and the documentation site: the README stays short and keeps its two commands, the site
builds with mkdocs --strict, every relative link (and anchor) in README.md and docs/*.md resolves, and the
README's first example is a spec `llmsynthor check` and `run --llm none` accept."""

import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
import yaml
from conftest import ROOT
from typer.testing import CliRunner

README = ROOT / "README.md"
DOCS = ROOT / "docs"
MAX_README_LINES = 250

# The contract (README, "Quick start"; .ci/run runs command 2): copied here so that a change to either shows.
INSTALL_AND_RUN = (
    "python3 -m venv .venv && . .venv/bin/activate && pip install -c constraints.txt -e . && "
    "llmsynthor run examples/ecommerce/spec.yaml --out out/ecommerce.csv"
)
RUN_THE_TESTS = "bash scripts/test.sh"

LINK = re.compile(r"(?<!\!)\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^\s*(```|~~~)")


def prose(text: str) -> str:
    """The text without fenced code blocks and code spans, where a link is no link."""
    lines, fenced = [], False
    for line in text.split("\n"):
        if FENCE.match(line):
            fenced = not fenced
            lines.append("")
            continue
        lines.append("" if fenced else line)
    return re.sub(r"`[^`\n]*`", "", "\n".join(lines))


def links(path: Path) -> list[str]:
    return LINK.findall(prose(path.read_text(encoding="utf-8")))


def anchors(path: Path) -> set[str]:
    """The anchors of a Markdown file's headings, as mkdocs (Python-Markdown's toc) and GitHub make them."""
    found = set()
    for line in prose(path.read_text(encoding="utf-8")).split("\n"):
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not heading:
            continue
        title = re.sub(r"[*_]", "", heading.group(1)).strip()
        ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
        found.add(re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", ascii_title).strip().lower()))  # mkdocs
        found.add(re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-"))  # GitHub
    return found


def documents() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def nav_pages() -> list[str]:
    def walk(entries):
        for entry in entries:
            value = next(iter(entry.values())) if isinstance(entry, dict) else entry
            if isinstance(value, list):
                yield from walk(value)
            else:
                yield value

    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    assert config["docs_dir"] == "docs"
    return list(walk(config["nav"]))


def test_the_readme_is_short():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines < MAX_README_LINES, f"README.md has {lines} lines: move detail to a page under docs/"


def test_the_readme_keeps_its_two_commands():
    text = README.read_text(encoding="utf-8")
    quick_start = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", quick_start, flags=re.S).group(1)
    commands = [line for line in block.split("\n") if line.strip() and not line.lstrip().startswith("#")]
    assert commands == [INSTALL_AND_RUN, RUN_THE_TESTS]
    assert RUN_THE_TESTS in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_the_site_builds_strictly_with_every_page(tmp_path):
    site = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    pages = nav_pages()
    assert "index.md" in pages
    assert sorted(set(pages)) == sorted(p.name for p in DOCS.glob("*.md")), "every page under docs/ is in the nav, once"
    for page in pages:
        built = site / ("index.html" if page == "index.md" else Path(page).with_suffix("") / "index.html")
        assert built.is_file(), f"{page} was not built ({built})"
        title = re.match(r"#\s+(.+)", (DOCS / page).read_text(encoding="utf-8")).group(1)
        assert "<h1" in built.read_text(encoding="utf-8"), f"{page} ({title}) has no title in the site"


@pytest.mark.parametrize("document", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(document):
    broken = []
    for target in links(document):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        resolved = (document.parent / path).resolve() if path else document
        if not resolved.exists():
            broken.append(f"{target}: no {resolved.relative_to(ROOT) if resolved.is_relative_to(ROOT) else resolved}")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no heading with the anchor #{anchor}")
    assert not broken, f"{document.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_readme_links_every_page():
    linked = {(README.parent / target.partition("#")[0]).resolve() for target in links(README)}
    missing = [p.name for p in sorted(DOCS.glob("*.md")) if p.name != "index.md" and p.resolve() not in linked]
    assert not missing, f"README.md's 'Where to go next' does not link {missing}"


def test_the_link_checks_can_fail(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# A page\n\n## Shared CPUs: llama.cpp's threads\n\n[ok](#shared-cpus-llamacpps-threads) "
                    "[gone](missing.md) `[code](not-a-link.md)`\n\n```\n[fenced](nor-this.md)\n```\n", encoding="utf-8")
    assert links(page) == ["#shared-cpus-llamacpps-threads", "missing.md"]
    assert "shared-cpus-llamacpps-threads" in anchors(page) and "a-page" in anchors(page)


def test_the_readmes_first_example_is_a_spec_that_runs(tmp_path, monkeypatch):
    """The spec and CSV of "A first example", written to a folder: `check` accepts them and
    `run --llm none` (no model) meets both tables."""
    from llmsynthor.cli import app

    monkeypatch.setenv("LLMSYNTHOR_CACHE", str(tmp_path / "cache"))
    text = README.read_text(encoding="utf-8").split("## A first example", 1)[1].split("\n## ", 1)[0]
    spec = re.search(r"```yaml\n(.*?)```", text, flags=re.S).group(1)
    table = re.search(r"```csv\n(.*?)```", text, flags=re.S).group(1)
    (tmp_path / "spec.yaml").write_text(spec, encoding="utf-8")
    (tmp_path / yaml.safe_load(spec)["targets"][0]["file"]).write_text(table, encoding="utf-8")
    runner = CliRunner()
    checked = runner.invoke(app, ["check", str(tmp_path / "spec.yaml")])
    assert checked.exit_code == 0, checked.output
    out = tmp_path / "out" / "people.csv"
    ran = runner.invoke(app, ["run", str(tmp_path / "spec.yaml"), "--llm", "none", "--out", str(out), "--no-cache"])
    assert ran.exit_code == 0, ran.output
    assert out.read_text(encoding="utf-8").count("\n") == 1 + 1000  # header + the table's total
    assert "llmsynthor run spec.yaml --out out/people.csv" in text
