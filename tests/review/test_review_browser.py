"""A real headless Chromium (selenium + Debian's chromedriver) against the review app served by uvicorn:
log in, filter, confirm one finding, reject one, change a class, draw a new box; then the database, the audit
trail and the exported labels are checked.

Needs ``/usr/bin/chromium`` and ``/usr/bin/chromedriver`` (``review/testing_browser.sh`` installs them). Without
them the test is skipped, except under ``CI`` (set and not "false"/"0"), where it fails. Set
``REVIEW_SCREENSHOT=docs/review.png`` to keep the screenshot of the findings page.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.review.conftest import PASSWORD, SITE

CHROMIUM = os.environ.get("REVIEW_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("REVIEW_CHROMEDRIVER", "/usr/bin/chromedriver")
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
)


def _browser_available() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not (Path(p).exists() or shutil.which(p))]
    if not missing:
        return
    why = f"{', '.join(missing)} not installed (run review/testing_browser.sh)"
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(f"CI is set and the browser test cannot run: {why}")
    pytest.skip(why)


@pytest.fixture
def served(review_env) -> Iterator[str]:
    """The review app under uvicorn on a free 127.0.0.1 port, in a thread."""
    import uvicorn

    from objectstore.server import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(review_env.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator:
    _browser_available()
    os.environ.setdefault("SE_OFFLINE", "true")  # selenium-manager must not look for a driver online
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def test_review_in_a_real_browser(browser, review_env, served: str, tmp_path: Path) -> None:
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from review.decisions import Decision
    from review.export import export_site

    d = browser
    q = d.find_element

    def text(elem_id: str) -> str:
        return q(By.ID, elem_id).text

    def navigate(elem_id: str) -> None:
        """Click ``elem_id`` and wait until the next page replaced this one and finished loading."""
        d.execute_script("window.__reviewOldPage = true")
        q(By.ID, elem_id).click()
        WebDriverWait(d, 15, ignored_exceptions=(WebDriverException,)).until(
            lambda drv: drv.execute_script(
                "return !window.__reviewOldPage && document.readyState === 'complete'"
            )
        )

    # login (the site page redirects there and back)
    d.get(f"{served}/sites/{SITE}")
    assert "/login" in d.current_url
    q(By.ID, "name").send_keys("rev1")
    q(By.ID, "password").send_keys(PASSWORD)
    navigate("login")
    assert d.current_url == f"{served}/sites/{SITE}"
    assert len(d.find_elements(By.CSS_SELECTOR, "#findings tbody tr[data-finding]")) == 5
    assert len(d.find_elements(By.CSS_SELECTOR, "#site-map circle.dot")) == 5
    # every crop thumbnail loaded through the app
    d.execute_script("window.scrollTo(0, document.body.scrollHeight)")
    loaded = "return Array.from(document.querySelectorAll('img.thumb')).filter(i => i.complete && i.naturalWidth > 0).length"
    WebDriverWait(d, 15).until(lambda drv: drv.execute_script(loaded) == 5)

    # filter: flight F1
    Select(q(By.ID, "f-flight")).select_by_value("F1")
    navigate("filter-apply")
    assert "flight=F1" in d.current_url
    rows = [r.get_attribute("data-finding") for r in d.find_elements(By.CSS_SELECTOR, "#findings tbody tr")]
    assert rows == ["F1/F0001", "F1/F0002", "F1/F0003"]

    # confirm F0001
    navigate("link-F1-F0001")
    navigate("btn-confirm")
    assert "confirm saved" in text("message") and text("status") == "confirmed" and text("version") == "2"

    # reject F0002 with a comment
    d.get(f"{served}/sites/{SITE}?flight=F1")
    navigate("link-F1-F0002")
    q(By.ID, "reject-comment").send_keys("glare on the frame")
    navigate("btn-reject")
    assert text("status") == "rejected"

    # change the class of F0003 (only pv-rgb classes are offered)
    d.get(f"{served}/sites/{SITE}/F1/F0003")
    offered = [o.get_attribute("value") for o in Select(q(By.ID, "class-select")).options]
    assert "delamination" in offered and "hotspot_single_cell" not in offered
    Select(q(By.ID, "class-select")).select_by_value("delamination")
    navigate("btn-reclassify")
    assert text("class").startswith("delamination") and text("status") == "confirmed"

    # draw a new box on the thermal frame of F2/F0002 by dragging (160x120 frame shown 480 px wide)
    d.get(f"{served}/sites/{SITE}/F2/F0002")
    frame = q(By.CSS_SELECTOR, "svg.frame.best")
    scale = frame.size["width"] / 160.0
    ActionChains(d).move_to_element_with_offset(
        frame, int(-20 * scale), int(-10 * scale)
    ).click_and_hold().move_by_offset(int(10 * scale), int(5 * scale)).move_by_offset(
        int(10 * scale), int(5 * scale)
    ).release().perform()
    drawn = [float(q(By.ID, f"box-{k}").get_attribute("value")) for k in ("x1", "y1", "x2", "y2")]
    assert drawn == pytest.approx([60, 50, 80, 60], abs=1.5)
    navigate("btn-box")
    assert text("status") == "confirmed"

    # the list shows it all; screenshot of the findings page
    d.get(f"{served}/sites/{SITE}")
    statuses = {
        r.get_attribute("data-finding"): r.find_element(By.CSS_SELECTOR, "td.st").text
        for r in d.find_elements(By.CSS_SELECTOR, "#findings tbody tr")
    }
    assert statuses == {
        "F1/F0001": "confirmed",
        "F1/F0002": "rejected",
        "F1/F0003": "confirmed",
        "F2/F0001": "pending",
        "F2/F0002": "confirmed",
    }
    shot = tmp_path / "review.png"
    d.set_window_size(1280, 820)
    d.save_screenshot(str(shot))
    assert shot.read_bytes().startswith(b"\x89PNG")
    if os.environ.get("REVIEW_SCREENSHOT"):
        from PIL import Image

        im = Image.open(shot).convert("RGB")
        im.thumbnail((900, 900))
        im.save(os.environ["REVIEW_SCREENSHOT"], optimize=True)
    source = d.page_source
    s = review_env.settings
    assert s.s3_access_key not in source and s.s3_secret_key not in source and s.s3_endpoint not in source

    # the database and the audit trail
    from review import db

    engine = review_env.app.state.review.engine
    with engine.connect() as conn:
        trail = {
            (f, fid): db.audit_trail(conn, SITE, f, fid)
            for f, fid in (("F1", "F0001"), ("F1", "F0002"), ("F1", "F0003"), ("F2", "F0002"))
        }
        f3 = db.get_finding(conn, SITE, "F1", "F0003")
        f22 = db.get_finding(conn, SITE, "F2", "F0002")
    assert f3["class_name"] == "delamination" and f3["orig_class"] == "snail_trail"
    assert f22["xyxy"] == pytest.approx([60, 50, 80, 60], abs=1.5)
    assert [(e["user"], e["action"]) for e in trail[("F1", "F0002")]] == [
        ("import", "import"),
        ("rev1", "reject"),
    ]
    assert trail[("F1", "F0002")][-1]["comment"] == "glare on the frame"
    assert trail[("F1", "F0003")][-1]["before"]["class_name"] == "snail_trail"
    assert trail[("F1", "F0003")][-1]["after"]["class_name"] == "delamination"
    assert all(t[-1]["user"] == "rev1" and t[-1]["after"]["version"] == 2 for t in trail.values())

    # the exported labels follow the decisions (F2/F0001 is still pending, so its frame is left out)
    from review.decisions import apply_decision

    res = export_site(engine, review_env.store, SITE, tmp_path / "export")
    assert res.skipped_frames == ["F2/IR_0001.tif"] and res.domains == ["pv-rgb"]
    labels = tmp_path / "export" / res.export_id / "pv-rgb" / "labels" / "train"
    first = (labels / "F1__DJI_0001.txt").read_text().split()
    assert first[0] == "1" and len(first) == 5  # F0001 glass_breakage kept, F0002 (rejected) gone
    second = sorted(line.split()[0] for line in (labels / "F1__DJI_0002.txt").read_text().splitlines())
    assert second == ["1", "4"]  # F0001's second view + F0003 as delamination (id 4)
    apply_decision(engine, SITE, "F2", "F0001", Decision("confirm", 1), "rev1")
    res = export_site(engine, review_env.store, SITE, tmp_path / "export")
    hot = (
        tmp_path / "export" / res.export_id / "pv-thermal" / "labels" / "train" / "F2__IR_0001.txt"
    ).read_text()
    assert sorted(line.split()[0] for line in hot.splitlines()) == ["0", "2"]
