"""The report as one self-contained HTML page with its charts (issue 22, item 4): matplotlib SVG embedded,
training curves with one marker per validation of each log, the funnel, quality against speed and size, the
provenance. The browser test opens the page in headless Chromium (Debian's) through Selenium and checks that the
charts render."""

import json
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from test_report_convergence import STUDENT, TEACHER, run  # noqa: F401  (the fixture)

SVG = "{http://www.w3.org/2000/svg}"


def validations(log: Path, metric: str = "chrf") -> int:
    return len(re.findall(rf"\[valid\] .* : {metric} : ", log.read_text()))


def test_the_html_report_embeds_every_chart_once(run):  # noqa: F811
    _, out = run()
    page = (out / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "<title>Run x: en -&gt; fr</title>" in page
    svgs = re.findall(r"<svg.*?</svg>", page, re.S)
    # quality/speed/size on flores, the teacher's and the student's curves, the funnel
    assert len(svgs) == 4
    for svg in svgs:
        ET.fromstring(svg)  # well-formed
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids)), "ids shared between figures: clip paths and markers would cross over"
    assert "src=" not in page and "<link" not in page  # self-contained: nothing fetched
    for model, log in ((TEACHER, run.teacher / "train.log"), (STUDENT, run.student / "train.log")):
        group = ET.fromstring(next(s for s in svgs if f'id="valid-chrf-{model}"' in s))
        line = next(g for g in group.iter(f"{SVG}g") if g.get("id") == f"valid-chrf-{model}")
        assert len(list(line.iter(f"{SVG}use"))) == validations(log) > 0
    assert "teacher: dev chrF" in page and "student: train cost" in page
    assert "Quality, speed and size on flores" in page
    assert "Data funnel: lines kept and removed per dataset" in page
    provenance = page[page.index("<h2>Provenance</h2>") :]
    assert (
        "<td>languages</td><td>en -&gt; fr</td>" in provenance
        and "<td>datasets</td><td>local_x</td>" in provenance
    )
    assert re.search(r"<td>code</td><td>([0-9a-f]{40}( \+changes)?|unknown)</td>", provenance)
    # The Markdown's tables are tables here too.
    assert "<th>model</th><th>BLEU</th><th>chrF</th>" in page


def chromium() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@pytest.mark.e2e
@pytest.mark.skipif(
    chromium() is None, reason="no Chromium: apt-get install chromium chromium-driver (.ci/run does)"
)
def test_the_charts_render_in_a_real_browser(run, tmp_path):  # noqa: F811
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    _, out = run()
    browser, driver_path = chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.get((out / "report.html").as_uri())
        sizes = driver.execute_script(
            "return [...document.querySelectorAll('figure svg')].map(s => s.getBoundingClientRect())"
            ".map(r => [r.width, r.height]);"
        )
        assert len(sizes) == 4 and all(w > 200 and h > 100 for w, h in sizes), sizes
        for model, log in ((TEACHER, run.teacher / "train.log"), (STUDENT, run.student / "train.log")):
            markers = driver.execute_script(
                "const g = document.getElementById(arguments[0]);"
                "return [...g.querySelectorAll('use')].map(u => u.getBoundingClientRect())"
                ".filter(r => r.width > 0 && r.height > 0).length;",
                f"valid-chrf-{model}",
            )
            assert markers == validations(log)
        # The curve itself is drawn: its path has a length on screen.
        length = driver.execute_script(
            "return document.getElementById(arguments[0]).querySelector('path').getTotalLength();",
            f"valid-chrf-{TEACHER}",
        )
        assert length > 50
        driver.save_screenshot(str(tmp_path / "report.png"))
    finally:
        driver.quit()
    assert (tmp_path / "report.png").stat().st_size > 10_000


def test_the_stage_times_are_a_table_and_a_chart(run, tmp_path):  # noqa: F811
    stage_times = {
        "cores": 2,
        "gpus": 0,
        "stages": [
            {"stage": "train-teacher-model", "tasks": 1, "finished": 1, "estimate_s": 1201.0, "actual_s": 672.7,
             "actual_over_estimate": 0.56},
            {"stage": "distillation-parallel-src-translate", "tasks": 2, "finished": 2, "estimate_s": 856.4,
             "actual_s": 571.1, "actual_over_estimate": 0.67},
            {"stage": "export", "tasks": 1, "finished": 1, "estimate_s": 0.0, "actual_s": 3.3,
             "actual_over_estimate": None},
        ],
        "not_in_graph": [],
    }  # fmt: skip
    path = tmp_path / "stage-times.json"
    path.write_text(json.dumps(stage_times))
    _, out = run(51.3, "--stage-times", path)
    markdown = (out / "report.md").read_text()
    assert "## Time per stage" in markdown and "(this machine, 2 cores;" in markdown
    assert "| train-teacher-model | 1/1 | 20.0 min | 11.2 min | 0.56 |" in markdown
    assert "| export | 1/1 | 0 s | 3 s | - |" in markdown
    assert "In all: 20.8 min of task time against 34.3 min estimated." in markdown
    page = (out / "report.html").read_text()
    svg = next(s for s in re.findall(r"<svg.*?</svg>", page, re.S) if "Time per stage against" in s)
    for stage in stage_times["stages"]:
        assert stage["stage"] in svg
    assert json.loads((out / "report.json").read_text())["stage_times"] == stage_times


def test_without_stage_times_the_report_has_no_time_section(run):  # noqa: F811
    _, out = run()
    assert "## Time per stage" not in (out / "report.md").read_text()
    assert json.loads((out / "report.json").read_text())["stage_times"] is None
