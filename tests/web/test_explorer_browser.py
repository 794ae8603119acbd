"""End-to-end tests of the Data Explorer in headless Chromium (issue #8): search by name and
by coordinates, filter by detector, sort, select, the sky view linked to the table both ways
(and its cap on footprints drawn at once), the image viewer's wavelength readout, a spectrum,
a bulk cutout and a download script, the keyboard, and errors said in words.

The small release covers M31 (four images hold its centre) and the NEP deep field."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from astropy.io import fits

from spherex_archive.products.detectors import DETECTORS
from tests.web.conftest import shot

NEP = "270.0 +66.56"


def search(page, explorer, target: str, **form) -> None:
    page.goto(explorer.url)
    page.wait_for_selector("body[data-ready=true]")
    page.fill("#target", target)
    if form.get("radius"):
        page.check("input[name=query][value=intersects]")
        page.fill("#radius", str(form["radius"]))
        page.select_option("#radius-unit", form.get("unit", "arcmin"))
    for number in form.get("without_detectors", ()):
        page.uncheck(f"input[name=detector][value='{number}']")
    page.click("#search-button")
    page.wait_for_selector("body[data-search=done]")


def column(page, name: str) -> list[str]:
    """The cells of a column on the current page of results."""
    names = page.eval_on_selector_all(
        "#results-table thead tr:first-child th", "ths => ths.map(th => th.textContent)"
    )
    index = next(i for i, text in enumerate(names) if text.startswith(name))
    return page.eval_on_selector_all(
        f"#results-table tbody tr[data-id] td:nth-child({index + 1})",
        "tds => tds.map(td => td.textContent)",
    )


def wait_footprints(page) -> int:
    page.wait_for_selector("#sky[data-footprints]")
    return int(page.get_attribute("#sky", "data-footprints"))


def test_search_by_name(page, explorer_server):
    search(page, explorer_server, "M31")
    rows = page.locator("#results-table tbody tr[data-id]")
    assert rows.count() == 4
    assert "M31" in page.inner_text("#target-resolved")
    assert "built-in" in page.inner_text("#target-resolved")
    assert re.search(r"\b4 images containing M31", page.inner_text("#results-summary"))
    # every parameter in the address: the deep link runs the same search
    query = parse_qs(urlsplit(page.url).query)
    assert query["target"] == ["M31"] and query["execute"] == ["true"]
    assert wait_footprints(page) == 4
    # each row links its file, DataLink, cutout and preview
    links = page.locator("#results-table tbody tr[data-id]").first.locator("td.links a")
    assert [a.inner_text() for a in links.all()] == ["file", "DataLink", "cutout", "preview"]
    page.wait_for_timeout(500)  # let the sky view paint its footprints
    shot(page, "01-search-by-name")

    # the table and the sky view are linked: a row's hover highlights, a click selects
    page.locator("#results-table tbody tr[data-id]").nth(1).click()
    selected = page.locator("#results-table tbody tr.active").get_attribute("data-id")
    assert page.get_attribute("#sky", "data-selected") == selected


def test_search_by_coordinates_and_deep_link(page, explorer_server):
    search(page, explorer_server, NEP, radius=5, unit="arcmin")
    total = int(re.search(r"([\d,]+) images", page.inner_text("#results-summary"))[1])
    assert total == 36
    assert "within 5 arcmin" in page.inner_text("#results-summary")
    shot(page, "02-search-by-coordinates")
    # IRSA's deep link works as well: a circle of 5 arcmin
    page.goto(explorer_server.url + "?api=spectral-images&ra=270.0&dec=66.56&sr=5m&execute=true")
    page.wait_for_selector("body[data-search=done]")
    assert page.input_value("#radius") == "5"
    assert page.input_value("#radius-unit") == "arcmin"
    assert "36 images" in page.inner_text("#results-summary")


def test_filter_by_detector_sort_and_select(page, explorer_server):
    search(page, explorer_server, NEP, radius=5, without_detectors=(2, 3, 4, 5, 6))
    assert set(column(page, "energy_bandpassname")) == {"SPHEREx-D1"}
    assert parse_qs(urlsplit(page.url).query)["detector"] == ["1"]
    shot(page, "03-filter-by-detector")

    # sort by clicking a header: aria-sort follows, the server orders the rows
    header = page.locator("#results-table th", has=page.locator("button[data-sort=t_min]"))
    header.locator("button").click()
    page.wait_for_selector("#results-table th[aria-sort=descending]")  # t_min is the default
    times = [float(t) for t in column(page, "t_min")]
    assert times == sorted(times, reverse=True)
    assert parse_qs(urlsplit(page.url).query)["order"] == ["desc"]
    header.locator("button").click()
    page.wait_for_selector("#results-table th[aria-sort=ascending]")
    times = [float(t) for t in column(page, "t_min")]
    assert times == sorted(times)

    # a per-column filter, server side
    page.fill("input[data-filter=obs_collection]", "deep")
    page.press("input[data-filter=obs_collection]", "Enter")
    page.wait_for_function("() => new URL(location).searchParams.get('filter')")
    assert set(column(page, "obs_collection")) <= {"spherex_qr2_deep"}
    shot(page, "04-sorted")

    # select rows: one by one, then the whole page
    first = page.locator("#results-table tbody input[data-select]").first
    first.check()
    assert page.inner_text("#selection-info") == "1 selected"
    page.check("#select-page")
    n = page.locator("#results-table tbody tr[data-id]").count()
    assert page.inner_text("#selection-info") == f"{n} selected"
    page.click("#tab-download")
    assert page.inner_text("#dl-count").startswith(f"{n} image")
    shot(page, "05-rows-selected")


def test_viewer_reads_a_wavelength_under_the_cursor(page, explorer_server):
    search(page, explorer_server, NEP, radius=5, without_detectors=(2, 3, 4, 5, 6))
    page.locator("#results-table tbody tr[data-id] td:nth-child(3)").first.click()
    page.wait_for_selector("#panel-image[data-loaded=IMAGE]")
    canvas = page.locator("#viewer-canvas")
    box = canvas.bounding_box()
    readout = page.locator("[data-r=wavelength]")
    for dx, dy in ((0.5, 0.5), (0.3, 0.7)):
        canvas.hover(position={"x": box["width"] * dx, "y": box["height"] * dy})
        page.wait_for_function(
            "() => /µm/.test(document.querySelector('[data-r=wavelength]').textContent)"
        )
    text = readout.inner_text()
    wavelength = float(re.match(r"([\d.]+) µm", text)[1])
    d1 = DETECTORS[1]
    assert d1.wave_short_um <= wavelength <= d1.wave_long_um, text
    assert re.match(r"x \d+, y \d+", page.inner_text("[data-r=pixel]"))
    assert re.match(r"\d+\.\d+, [+-]?\d+\.\d+", page.inner_text("[data-r=radec]"))
    shot(page, "06-viewer-wavelength")

    # FLAGS: a mask over the image with a legend of the bits
    page.click(".hdu-tabs button[data-hdu=FLAGS]")
    page.wait_for_selector("#panel-image[data-loaded=FLAGS]")
    assert page.is_visible("#flag-legend")
    assert "NONFUNC" in page.inner_text("#flag-legend")
    # zoom with the keyboard
    canvas.focus()
    page.keyboard.press("+")
    shot(page, "07-viewer-flags")


SKY = "document.getElementById('sky').skyView"


def wait_sky_drawn(page) -> None:
    """Until the answer's footprints are on screen and the view has stopped moving (the search
    centres and zooms it): edgePoint is where a pointer finds a footprint only then."""
    page.wait_for_function("() => performance.getEntriesByName('explorer:footprints-drawn').length")
    page.wait_for_function(f"() => {SKY}.layer.page && {SKY}.layer.all")
    last = None
    for _ in range(50):
        now = page.evaluate(
            f"() => [{SKY}.aladin.getRaDec(), {SKY}.aladin.getFov(), {SKY}.layer.all.screen?.[0]]"
        )
        if now == last:
            return
        last = now
        page.wait_for_timeout(200)
    pytest.fail("the sky view never stopped moving")


def test_sky_and_table_are_linked_both_ways(page, explorer_server):
    asked = []
    page.on("request", lambda r: asked.append(r.url) if "/api/" in r.url else None)
    search(page, explorer_server, NEP, radius=5)
    assert wait_footprints(page) == 36
    # The first page asks the server to read the footprints as it answers; they come as one
    # binary block.
    assert any("/api/search?" in url and "prefetch=footprints" in url for url in asked)
    assert any("/api/footprints?" in url and "format=binary" in url for url in asked)
    wait_sky_drawn(page)
    ids = page.eval_on_selector_all(
        "#results-table tbody tr[data-id]", "rows => rows.map(r => r.dataset.id)"
    )
    # A row's footprint, reached where nothing else lies nearer (overlapping outlines share
    # points): the pointer on it marks the row, a click selects it and opens its image.
    for did in ids:
        point = page.evaluate(f"(id) => {SKY}.edgePoint(id)", did)
        if point and page.evaluate(f"([x, y]) => {SKY}.idAt(x, y)", point) == did:
            break
    else:
        pytest.fail("no footprint outline of the page's rows can be pointed at")
    page.mouse.move(point[0] + 20, point[1] + 20)
    page.mouse.move(*point, steps=4)  # Aladin reports moves, not positions
    page.wait_for_selector(f"#results-table tbody tr.hovered[data-id='{did}']")
    assert page.evaluate(f"() => {SKY}.layer.hovered[0].ids[{SKY}.layer.hovered[1]]") == did
    page.mouse.click(*point)
    page.wait_for_selector(f"#results-table tbody tr.active[data-id='{did}']")
    assert page.get_attribute("#sky", "data-selected") == did
    page.wait_for_selector("#viewer-canvas", state="attached")
    shot(page, "05b-footprint-clicked")
    # Away from every outline, nothing is hovered.
    box = page.locator("#sky").bounding_box()
    corner = (box["x"] + 3, box["y"] + box["height"] - 3)
    if page.evaluate(f"([x, y]) => {SKY}.idAt(x, y)", corner) is None:
        page.mouse.move(*corner)
        page.wait_for_selector("#results-table tbody tr.hovered", state="detached")


def test_a_capped_sky_view_samples_and_says_so(page, explorer_server):
    search(page, explorer_server, NEP, radius=5)
    assert wait_footprints(page) == 36
    wait_sky_drawn(page)
    assert page.inner_text("#sky-note") == ""
    in_view = int(page.get_attribute("#sky", "data-in-view"))
    assert in_view > 5 and page.get_attribute("#sky", "data-drawn") == str(in_view)
    # At most `cap` footprints of the answer are drawn at once, an even sample of those in view
    page.evaluate(f"() => {{ {SKY}.layer.cap = 5; {SKY}.footprints.reportChange(); }}")
    page.wait_for_selector("#sky[data-drawn='5']")
    assert f"5 of the {in_view} in view are drawn" in page.inner_text("#sky-note")
    drawn = page.evaluate(f"() => Array.from({SKY}.layer.all.shown).filter(Boolean).length")
    assert drawn == 5
    # ... and those of the rows on screen are always there.
    ids = page.eval_on_selector_all(
        "#results-table tbody tr[data-id]", "rows => rows.map(r => r.dataset.id)"
    )
    points = [page.evaluate(f"(id) => {SKY}.edgePoint(id)", did) for did in ids]
    assert sum(p is not None for p in points) == in_view
    shot(page, "05c-capped-sky")
    page.evaluate(f"() => {{ {SKY}.layer.cap = 3000; {SKY}.footprints.reportChange(); }}")
    page.wait_for_selector(f"#sky[data-drawn='{in_view}']")
    assert page.inner_text("#sky-note") == ""


@pytest.mark.slow
def test_spectrum_at_the_target(page, explorer_server):
    page.goto(explorer_server.url)
    page.fill("#target", "NEP")
    page.click("#spectrum-at-target")
    # progress is shown while the job runs
    page.wait_for_selector("#spectrum-phase")
    page.wait_for_selector("#panel-spectrum[data-state=done]", timeout=120_000)
    assert re.search(r"Completed · [\d.]+ s", page.inner_text("#spectrum-phase"))
    assert page.locator("svg.spectrum-plot circle").count() > 10
    rows = page.locator(".spectrum-table tbody tr")
    assert rows.count() > 0
    links = [a.get_attribute("data-result") for a in page.locator("#panel-spectrum a").all()]
    assert {"result", "result-csv", "spectrum-png"} <= set(links)
    shot(page, "08-spectrum")


@pytest.mark.slow
def test_download_cutouts_and_script(page, explorer_server):
    search(page, explorer_server, "M31")
    page.check("#select-page")
    page.click("#tab-download")
    assert page.input_value("#cut-ra").startswith("10.6847")
    page.fill("#cut-size", "60")
    page.click("#dl-cutouts")
    page.wait_for_selector("#panel-download[data-cutouts=done]", timeout=120_000)
    shot(page, "09-cutouts-ready")
    with page.expect_download() as info:
        page.click("#cut-result a[data-result=cutouts]")
    path = info.value.path()
    with fits.open(path) as hdus:
        toc = hdus["TOC"].data
        assert len(toc) == 4
        assert sum(1 for h in hdus if h.name.startswith("IMAGE")) == 4

    # the wget script downloads each selected file
    ids = page.eval_on_selector_all(
        "#results-table tbody tr[data-id]", "r => r.map(t => t.dataset.id)"
    )
    with page.expect_download() as info:
        page.click("#dl-script")
    script = Path(info.value.path()).read_text()
    assert script.startswith("#!") and "wget" in script
    files = page.eval_on_selector_all(
        "#results-table tbody td.links a:first-child", "a => a.map(x => x.href)"
    )
    assert len(ids) == 4 and all(f in script for f in files)
    # and curl, with cutouts
    page.check("input[name=script-kind][value=curl]")
    page.check("#script-cutouts")
    with page.expect_download() as info:
        page.click("#dl-script")
    script = Path(info.value.path()).read_text()
    assert (
        "curl -f" in script and script.count("?center=10.6847") == 4 and "size=60arcsec" in script
    )
    shot(page, "10-script")


def test_keyboard_search(page, explorer_server):
    page.goto(explorer_server.url)
    page.wait_for_selector("body[data-ready=true]")
    for _ in range(12):  # the skip link, the archive link, the radio buttons, then the field
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "target":
            break
    assert page.evaluate("document.activeElement.id") == "target"
    page.keyboard.type("M31")
    page.keyboard.press("Enter")
    page.wait_for_selector("body[data-search=done]")
    assert page.locator("#results-table tbody tr[data-id]").count() == 4
    # the focus ring is visible on the focused control
    page.keyboard.press("Tab")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"
    shot(page, "11-keyboard")


def test_unknown_name_is_said_where_it_happened(page, explorer_server):
    page.goto(explorer_server.url)
    page.fill("#target", "Not A Real Galaxy 123")
    page.click("#search-button")
    error = page.locator("#target-error")
    error.wait_for(state="visible")
    assert "Not A Real Galaxy 123" in error.inner_text()
    assert "coordinates" in error.inner_text()
    assert page.get_attribute("#target", "aria-invalid") == "true"
    assert page.evaluate("document.activeElement.id") == "target"
    assert page.locator("#results-table tbody tr[data-id]").count() == 0
    # a bad radius is said beside the radius
    page.fill("#target", "M31")
    page.check("input[name=query][value=intersects]")
    page.fill("#radius", "-2")
    page.click("#search-button")
    assert "greater than zero" in page.inner_text("#radius-error")
    shot(page, "12-unknown-name")
