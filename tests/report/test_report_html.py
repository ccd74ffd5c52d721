"""report.html: written beside report.md by every report writer, self-contained, and opened in a
real headless Chromium (Debian's chromium and chromium-driver, driven through Selenium) to
check that every figure and table is shown, sorting works, and nothing logs a console error."""

from __future__ import annotations

import base64
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from hybrid_rl.report.report import write_phase1_outputs
from hybrid_rl.report.report_phase2 import write_phase2_outputs
from hybrid_rl.report.report_study import write_study_outputs

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
COMMAND = "hybrid-rl study --quick --plot_only"


def write_study_runs(tmp_path: Path, write_run, write_finetune_run) -> tuple[Path, Path]:
    """Two seeds × k ∈ {0, 60} of Phase I and both bonus arms of Phase II, on one dataset."""
    phase1, phase2 = tmp_path / "results", tmp_path / "results_phase2"
    for seed in (0, 1):
        write_run(
            phase1,
            k=0,
            seed=seed,
            evals=(0.0, 30.0, 50.0, 48.0, 52.0, 50.0 + seed),
            eval_std=2.0,
            q_mean=(10.0, 20.0, 30.0, 31.0, 30.0),
            q_std=(1.0,) * 5,
        )
        write_run(
            phase1,
            k=60,
            seed=seed,
            evals=(0.0, 15.0, 20.0, 21.0, 22.0, 20.0 + seed),
            eval_std=2.0,
            q_mean=(10.0, 15.0, 16.0, 17.0, 17.0),
            q_std=(1.0,) * 5,
        )
        for bonus, evals in (
            ("ensemble", (20.0, 12.0, 30.0, 41.0, 44.0)),
            ("none", (20.0, 25.0, 35.0, 46.0, 47.0)),
        ):
            write_finetune_run(
                phase2,
                phase1,
                k=60,
                bonus=bonus,
                seed=seed,
                evals=tuple(e + seed for e in evals),
                eval_std=2.0,
                disagreement=(2.0, 1.5, 1.0, 0.8),
            )
    return phase1, phase2


def run_names(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.is_dir()]


def test_every_report_writer_writes_a_self_contained_html_beside_report_md(
    tmp_path, write_run, write_finetune_run
):
    phase1, phase2 = write_study_runs(tmp_path, write_run, write_finetune_run)
    first = write_phase1_outputs(phase1, tmp_path / "plots", command=COMMAND)
    second = write_phase2_outputs(phase2, tmp_path / "plots_phase2", phase1, command=COMMAND)
    study = write_study_outputs(
        phase1, phase2, tmp_path / "study", run_names(phase1), run_names(phase2), "Study"
    )
    for outputs, plots in (
        (first, first.plots),
        (second, second.plots),
        (study, study.phase1.plots + study.phase2.plots),
    ):
        assert outputs.html == outputs.report.with_name("report.html")
        page = outputs.html.read_text()
        # every figure embedded (no file needed beside the page), the PNG's own bytes
        images = re.findall(r'<img src="data:image/png;base64,([^"]+)"', page)
        assert len(images) == len(plots) > 0
        assert base64.b64decode(images[0]) == plots[0].png.read_bytes()
        assert "<script>" in page and 'src="http' not in page
    page = first.html.read_text()
    assert f"<code>{COMMAND}</code>" in page
    assert "0123456789abcdef0123456789abcdef01234567" in page  # the runs' recorded commit
    # every number of a table row links to that row's run folders, which link their files
    [anchor] = re.findall(r'<a href="#(src-\d+)" title="from iql_hopper-medium-v2_k60', page)[:1]
    listing = page[page.index(f'id="{anchor}"') :]
    assert "iql_hopper-medium-v2_k60_noise0_s0" in listing.split("</div>")[0]
    assert "metrics.json</a>" in listing.split("</div>")[0]


@pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="Chromium and ChromeDriver are not installed (Debian: apt-get install chromium "
    "chromium-driver; .ci/run installs them)",
)
def test_the_study_page_shows_every_figure_and_table_without_console_errors(
    tmp_path, write_run, write_finetune_run
):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium (the [dev] extra)")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    phase1, phase2 = write_study_runs(tmp_path, write_run, write_finetune_run)
    study = write_study_outputs(
        phase1,
        phase2,
        tmp_path / "study",
        run_names(phase1),
        run_names(phase2),
        "Study: IQL on hopper-medium-v2",
        intro=["A synthetic study."],
        command=COMMAND,
    )
    assert study.html is not None
    expected_figures = len(study.phase1.plots) + len(study.phase2.plots)
    expected_tables = study.html.read_text().count("<table ")

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--no-first-run",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        driver.set_page_load_timeout(60)
        driver.get(study.html.as_uri())
        assert driver.execute_script("return document.readyState") == "complete"
        images = driver.find_elements(By.CSS_SELECTOR, "figure img")
        assert len(images) == expected_figures > 0
        decoded = driver.execute_script(
            "return Array.from(document.querySelectorAll('figure img'))"
            ".map(function (img) { return img.complete && img.naturalWidth > 0; });"
        )
        assert all(decoded), decoded
        tables = driver.find_elements(By.CSS_SELECTOR, "table.sortable")
        assert len(tables) == expected_tables >= 3  # Phase I, Phase II, paired arms
        for table in tables:
            assert table.is_displayed() and table.find_elements(By.CSS_SELECTOR, "tbody tr")

        # sorting: a click on "Final score" orders the Phase II rows by it, a second reverses
        phase2_table = next(t for t in tables if "Phase I data" in t.text and "Bonus" in t.text)
        header = next(
            h for h in phase2_table.find_elements(By.TAG_NAME, "th") if h.text == "Final score"
        )
        column = [h.text for h in phase2_table.find_elements(By.TAG_NAME, "th")].index(
            "Final score"
        )

        def column_values() -> list[float]:
            return [
                float(row.find_elements(By.TAG_NAME, "td")[column].get_attribute("data-sort"))
                for row in phase2_table.find_elements(By.CSS_SELECTOR, "tbody tr")
            ]

        header.click()
        assert column_values() == sorted(column_values())
        header.click()
        assert column_values() == sorted(column_values(), reverse=True)

        # a number links to the run folders it came from
        link = phase2_table.find_element(By.CSS_SELECTOR, "tbody td a")
        target = link.get_attribute("href").split("#")[1]
        runs = driver.find_element(By.ID, target).text
        assert "ft_iql_hopper-medium-v2_k60" in runs

        errors = [
            entry
            for entry in driver.get_log("browser")
            if entry["level"] in ("SEVERE", "ERROR", "WARNING")
        ]
        assert errors == []
    finally:
        driver.quit()
