"""Make a rendered Great Expectations Data Docs site work offline: the CSS/JS its pages load from CDNs is copied
into the site from `data/data_docs_vendor/` and the pages point at those copies; tags of the libraries not vendored
(icons, dark theme, date picker, charts) and remote logos are removed, so a page never reaches for the network."""

import os
import re
import shutil
from pathlib import Path

VENDOR_DIR = Path(__file__).resolve().parents[1] / "data" / "data_docs_vendor"
SITE_VENDOR = Path("static") / "vendor"
# The last path segment of each CDN URL GX 1.x pages use -> its vendored copy (None: the tag is dropped).
CDN_FILES = {
    "bootstrap.min.css": "bootstrap.min.css",
    "bootstrap.min.js": "bootstrap.min.js",
    "jquery-3.7.1.min.js": "jquery.min.js",
    "popper.min.js": "popper.min.js",
    "bootstrap-table.min.css": "bootstrap-table.min.css",
    "bootstrap-table.min.js": "bootstrap-table.min.js",
    "bootstrap-table-filter-control.min.css": "bootstrap-table-filter-control.min.css",
    "bootstrap-table-filter-control.min.js": "bootstrap-table-filter-control.min.js",
}
_TAG = re.compile(
    r"""<link[^>]*href=["'](https?://[^"']+)["'][^>]*>|<script[^>]*src=["'](https?://[^"']+)["'][^>]*>\s*</script>"""
    r"""|<img[^>]*src=["'](https?://[^"']+)["'][^>]*>"""
)


def _rewrite(html: str, vendor_href: str) -> str:
    def replace(match: re.Match) -> str:
        url = match.group(1) or match.group(2) or match.group(3)
        local = None if match.group(3) else CDN_FILES.get(url.rsplit("/", 1)[-1])
        if local is None:
            return ""
        if match.group(1):
            return f'<link rel="stylesheet" href="{vendor_href}/{local}">'
        return f'<script src="{vendor_href}/{local}"></script>'

    return _TAG.sub(replace, html)


def make_offline(site_dir: Path) -> None:
    """Vendor the site's CDN assets into `site_dir/static/vendor/` and rewrite every page to use them."""
    target = site_dir / SITE_VENDOR
    target.mkdir(parents=True, exist_ok=True)
    for name in sorted(set(CDN_FILES.values())):
        shutil.copyfile(VENDOR_DIR / name, target / name)
    for page in site_dir.rglob("*.html"):
        href = Path(os.path.relpath(target, page.parent)).as_posix()
        page.write_text(_rewrite(page.read_text(encoding="utf-8"), href), encoding="utf-8")
