"""Render a report in headless Chromium (Debian's ``chromium``) and measure its layout: for every table, whether it
is wider than the page or than the block that holds it (so that part of it would be cut off or need scrolling).

``layout(html, width, print_media)``: the page at ``width`` CSS pixels, every collapsed table opened; with
``print_media`` the report's
``@media print`` rules apply (they are switched on for the screen, the same rules a PDF printer uses) at the width
of the printed page. Returns the measurement as a dict: W (page width), tables (count), too_wide (tables and images
that do not fit)."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"]
# A4 landscape minus the report's print margins (10 mm each side), in CSS pixels (96 per inch)
PRINT_WIDTH_PX = round((297 - 2 * 10) / 25.4 * 96)

PROBE = """<script>window.addEventListener("load", function () {
  /* every collapsed table opened first, as a reader (or printing) opens it */
  document.querySelectorAll("details").forEach(function (d) { d.open = true; });
  setTimeout(measure, 200);
});
function measure() {
  var W = document.documentElement.clientWidth, bad = [];
  document.querySelectorAll("table").forEach(function (t, i) {
    var r = t.getBoundingClientRect(), p = t.parentElement.getBoundingClientRect();
    if (r.right > W + 1 || r.width > p.width + 1)
      bad.push({table: i, in: (t.closest("[id]") || {}).id, width: r.width, room: Math.min(p.width, W)});
  });
  document.querySelectorAll("img").forEach(function (m, i) {
    var r = m.getBoundingClientRect();
    if (r.right > W + 1) bad.push({image: i, width: r.width, room: W});
  });
  var pre = document.createElement("pre");
  pre.id = "layout-probe";
  pre.textContent = JSON.stringify({W: W, tables: document.querySelectorAll("table").length, too_wide: bad,
                                    page_scroll_width: document.documentElement.scrollWidth});
  document.body.appendChild(pre);
}</script>"""


def chromium() -> str:
    exe = shutil.which("chromium")
    if exe is None:
        raise RuntimeError("Debian's chromium is not installed: run `make system-deps` (apt-get install chromium)")
    return exe


def layout(html: str, width: int = 1400, print_media: bool = False) -> dict:
    if print_media:
        html = html.replace("@media print", "@media all")
    html = html.replace("</body>", PROBE + "</body>")
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "report.html"
        page.write_text(html, encoding="utf-8")
        out = subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp}/profile",
                              f"--window-size={width},1000", "--virtual-time-budget=30000", "--dump-dom",
                              page.as_uri()], capture_output=True, text=True, timeout=300)
    found = re.search(r'<pre id="layout-probe">(.*?)</pre>', out.stdout, re.S)
    if not found:
        raise RuntimeError(f"chromium did not render the page: {out.stderr[-2000:]}")
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def print_pdf(html_path: Path, pdf_path: Path) -> Path:
    """Print the report to PDF with Chromium (the @media print rules apply)."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp}/profile", "--no-pdf-header-footer",
                        f"--print-to-pdf={pdf_path}", Path(html_path).resolve().as_uri()], capture_output=True,
                       text=True, timeout=300, check=True)
    return pdf_path
