"""The report in a real browser (headless Chromium, Debian's ``chromium``): no table is wider than the page, on a
1400-pixel screen and on the printed page, for wide synthetic tables and for the shipped report; it prints to PDF."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import report as R
from browser_layout import PRINT_WIDTH_PX, layout, print_pdf

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "reports" / "report.html"


def _wide_report(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    wide = pd.DataFrame(rng.random((4, 24)), columns=[f"a_rather_long_column_name_{i}" for i in range(24)])
    wide.insert(0, "claim", ["the mismatched phrase scores above the mismatched word, per image"] * 4)
    tests = pd.DataFrame({"metric": ["cosine"] * 3, "contrast": ["color vs shape"] * 3, "estimate": rng.random(3),
                          "ci_low": rng.random(3), "ci_high": rng.random(3), "p": rng.random(3),
                          "p_holm": rng.random(3), "n_images_both": [40, 41, 42], "dz": rng.random(3),
                          "dz_ci_low": rng.random(3), "dz_ci_high": rng.random(3), "mde": rng.random(3)})
    modes = {m: ({"table_ix_contrasts": tests, "my_wide_table": wide}, {}) for m in ("single", "multi")}
    return R.render_report(tmp_path / "wide.html", {"paper_comparison": wide}, modes=modes,
                           findings={"v-b": ["A finding."]}, dpi=30)


@pytest.mark.parametrize("width, print_media", [(1400, False), (PRINT_WIDTH_PX, True)])
def test_wide_tables_fit_the_page(tmp_path, width, print_media):
    measured = layout(_wide_report(tmp_path).read_text(), width, print_media)
    assert measured["tables"] >= 5
    assert measured["too_wide"] == [], measured


def test_the_probe_sees_a_table_that_does_not_fit(tmp_path):
    html = _wide_report(tmp_path).read_text()
    forced = html.replace('<table class="dataframe data">', '<table class="dataframe data" style="width:3000px">', 1)
    assert forced != html
    assert layout(forced, 1400)["too_wide"]


@pytest.mark.parametrize("width, print_media", [(1400, False), (PRINT_WIDTH_PX, True)])
def test_shipped_report_fits_the_page(width, print_media):
    measured = layout(SHIPPED.read_text(encoding="utf-8"), width, print_media)
    assert measured["tables"] > 20
    assert measured["too_wide"] == [], measured


def test_shipped_report_prints_to_pdf(tmp_path):
    pdf = print_pdf(SHIPPED, tmp_path / "report.pdf")
    data = pdf.read_bytes()
    assert data[:5] == b"%PDF-" and data.count(b"/Type /Page") > 10
