"""Make a rendered Great Expectations Data Docs site work offline: the CSS/JS its pages load from CDNs is copied
into the site from `data/data_docs_vendor/` and the pages point at those copies (the date picker the validation
results table needs, and the icons of the status column, included); the tag of the one library not vendored (the
optional dark theme) and remote logos are removed, so a page never reaches for the network."""

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
    "bootstrap-datepicker.min.css": "bootstrap-datepicker.min.css",
    "bootstrap-datepicker.min.js": "bootstrap-datepicker.min.js",
    "all.min.css": "fontawesome/css/all.min.css",
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


# GX links each page's favicon with a fixed number of "../", one short on validation result pages.
_FAVICON = re.compile(r'href="[./]*static/images/favicon\.ico"')


def make_offline(site_dir: Path) -> None:
    """Vendor the site's CDN assets into `site_dir/static/vendor/` and rewrite every page to use them."""
    target = site_dir / SITE_VENDOR
    shutil.copytree(VENDOR_DIR, target, dirs_exist_ok=True)
    for page in site_dir.rglob("*.html"):
        href = Path(os.path.relpath(target, page.parent)).as_posix()
        favicon = Path(os.path.relpath(site_dir / "static" / "images" / "favicon.ico", page.parent)).as_posix()
        html = _FAVICON.sub(f'href="{favicon}"', _rewrite(page.read_text(encoding="utf-8"), href))
        page.write_text(html, encoding="utf-8")
