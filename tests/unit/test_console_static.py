"""The vendored htmx is the file VENDORED.md names, and every page's assets are files we ship."""

import hashlib
import re
from pathlib import Path

import authgate.console

STATIC = Path(authgate.console.__file__).parent / "static"
TEMPLATES = Path(authgate.console.__file__).parent / "templates"


def test_vendored_htmx_matches_its_recorded_hash() -> None:
    recorded = re.search(r"`htmx.min.js`.*\| ([0-9.]+) \| `([0-9a-f]{64})`", (STATIC / "VENDORED.md").read_text())
    assert recorded, "VENDORED.md must give htmx.min.js's version and sha256"
    assert hashlib.sha256((STATIC / "htmx.min.js").read_bytes()).hexdigest() == recorded.group(2)
    assert f'version:"{recorded.group(1)}"' in (STATIC / "htmx.min.js").read_text()


def test_templates_hold_no_inline_script_or_style() -> None:
    for template in TEMPLATES.glob("*.html"):
        text = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), template.name
        assert "<style" not in text and " style=" not in text, template.name
        assert not re.search(r"\son[a-z]+=", text), template.name
        for asset in re.findall(r'(?:src|href)="/static/([^"]+)"', text):
            assert (STATIC / asset).is_file(), (template.name, asset)
