"""The Explorer's search service on both catalogues: every constraint checked against a
brute-force answer (SIA for positions, the whole ObsCore table filtered in Python for the rest),
pages that tile the whole sorted answer, totals cached until the catalogue changes, footprints
(JSON and binary, their total from the kept order, read once, prefetched) and download
scripts."""

from __future__ import annotations

import itertools
import json
import shlex
import struct
import threading

import numpy as np
import pytest

from spherex_archive.catalogue.base import QueryTimeout
from spherex_archive.config import Settings
from spherex_archive.services import explorer as ex
from spherex_archive.services.explorer import (
    BadParameter,
    ExplorerService,
    Filter,
    Page,
    Search,
    UnknownDataset,
    where_clause,
)
from spherex_archive.services.query import QueryEngine
from spherex_archive.services.sia import SiaService
from spherex_archive.synth.survey import DEEP_FIELDS

BASE = "https://archive.example.org"
NEP = DEEP_FIELDS["NEP"]
FIELDS = (
    "obs_publisher_did",
    "obs_collection",
    "obs_id",
    "energy_bandpassname",
    "t_min",
    "t_max",
    "em_min",
    "em_max",
    "t_exptime",
    "s_region",
)


@pytest.fixture(scope="module")
def services(catalogues) -> dict[str, ExplorerService]:
    settings = Settings(base_url=BASE)
    return {b: ExplorerService(QueryEngine(c, timeout=30), settings) for b, c in catalogues.items()}


@pytest.fixture(scope="module")
def everything(catalogues) -> dict[str, list[dict]]:
    """Every released plane of each catalogue, as dictionaries."""
    out = {}
    for backend, catalogue in catalogues.items():
        rows = QueryEngine(catalogue).run(f"SELECT {', '.join(FIELDS)} FROM spherex.obscore").rows
        out[backend] = [dict(zip(FIELDS, row, strict=True)) for row in rows]
    return out


def sia_ids(catalogue, params: dict[str, list[str]]) -> set[str]:
    answer = SiaService(QueryEngine(catalogue), BASE).search(params, 100_000)
    index = [c.name for c in answer.columns].index("obs_publisher_did")
    return {row[index] for row in answer.rows}


def every_page(service: ExplorerService, search: Search, page: Page) -> tuple[list, int]:
    """All rows of a search, page after page; and the total every page gave."""
    rows, totals = [], set()
    for offset in itertools.count(0, page.limit):
        found = service.search(
            search, Page(page.columns, page.sort, page.descending, offset, page.limit)
        )
        totals.add(found["total"])
        rows += found["rows"]
        if len(found["rows"]) < page.limit:
            break
    assert len(totals) == 1
    return rows, totals.pop()


def test_pages_tile_the_sorted_answer(services, everything, catalogues, backend):
    search = Search(targets=[NEP], radius=1.0)
    expected = sia_ids(catalogues[backend], {"POS": [f"CIRCLE {NEP[0]} {NEP[1]} 1.0"]})
    assert len(expected) > 20
    page = Page(columns=["obs_publisher_did", "t_min"], limit=7)
    rows, total = every_page(services[backend], search, page)
    assert total == len(expected) == len(rows)
    by_id = {r["obs_publisher_did"]: r for r in everything[backend]}
    wanted = sorted(expected, key=lambda d: (by_id[d]["t_min"], d))
    assert [r[0] for r in rows] == wanted
    assert [r[1] for r in rows] == [by_id[d]["t_min"] for d in wanted]


def test_descending_sort_on_any_column(services, everything, backend):
    search = Search(collections=["spherex_qr2_deep"])
    page = Page(columns=["obs_publisher_did", "em_min"], sort="em_min", descending=True, limit=9)
    rows, total = every_page(services[backend], search, page)
    deep = [r for r in everything[backend] if r["obs_collection"] == "spherex_qr2_deep"]
    assert total == len(deep)
    expected = sorted(deep, key=lambda r: r["obs_publisher_did"])
    expected.sort(key=lambda r: r["em_min"], reverse=True)  # stable: ids ascending within
    assert [r[0] for r in rows] == [r["obs_publisher_did"] for r in expected]


def test_contains_and_intersects_agree_with_sia(services, catalogues, backend):
    service = services[backend]
    for targets, radius in (([NEP], 0.0), ([NEP], 0.3), ([(10.6847, 41.269), NEP], 0.0)):
        found = service.search(Search(targets=targets, radius=radius), Page(limit=1000))
        pos = [f"CIRCLE {ra} {dec} {radius}" for ra, dec in targets]
        assert {link["id"] for link in found["links"]} == sia_ids(catalogues[backend], {"POS": pos})
        assert found["total"] == len(found["rows"])


def test_time_wavelength_detector_and_collection(services, everything, backend):
    rows = everything[backend]
    t_min = sorted(r["t_min"] for r in rows if r["t_min"] is not None)
    t0, t1 = t_min[len(t_min) // 4], t_min[len(t_min) // 2]
    search = Search(
        time=(t0, t1),
        wavelength=(1.5, 2.0),
        detectors=[2, 3],
        collections=["spherex_qr2", "spherex_qr2_deep"],
    )
    found = services[backend].search(search, Page(limit=1000))
    expected = {
        r["obs_publisher_did"]
        for r in rows
        if r["t_min"] is not None
        and r["t_min"] <= t1
        and r["t_max"] >= t0
        and r["em_min"] <= 2.0e-6
        and r["em_max"] >= 1.5e-6
        and r["energy_bandpassname"] in ("SPHEREx-D2", "SPHEREx-D3")
        and r["obs_collection"] in ("spherex_qr2", "spherex_qr2_deep")
    }
    assert expected and {link["id"] for link in found["links"]} == expected
    # Open-ended ranges.
    found = services[backend].search(Search(wavelength=(4.5, None)), Page(limit=1000))
    expected = {
        r["obs_publisher_did"] for r in rows if r["em_max"] is not None and r["em_max"] >= 4.5e-6
    }
    assert {link["id"] for link in found["links"]} == expected


def test_column_filters(services, everything, backend):
    rows = everything[backend]
    service = services[backend]
    times = sorted({r["t_min"] for r in rows if r["t_min"] is not None})
    middle = times[len(times) // 2]
    cases = [
        (
            Filter("t_min", "gt", repr(middle)),
            lambda r: r["t_min"] is not None and r["t_min"] > middle,
        ),
        (
            Filter("t_min", "le", repr(middle)),
            lambda r: r["t_min"] is not None and r["t_min"] <= middle,
        ),
        (Filter("obs_id", "like", "w29_2a"), lambda r: "w29_2a" in r["obs_id"].lower()),
        (
            Filter("obs_collection", "ne", "spherex_qr2_cal"),
            lambda r: r["obs_collection"] != "spherex_qr2_cal",
        ),
        (
            Filter("energy_bandpassname", "eq", "SPHEREx-D4"),
            lambda r: r["energy_bandpassname"] == "SPHEREx-D4",
        ),
    ]
    for condition, keep in cases:
        found = service.search(Search(filters=[condition]), Page(limit=1000))
        expected = {r["obs_publisher_did"] for r in rows if keep(r)}
        assert expected, condition
        assert {link["id"] for link in found["links"]} == expected, condition
        assert found["total"] == len(expected)


@pytest.mark.parametrize(
    "search, page, words",
    [
        (Search(filters=[Filter("t_exptime", "like", "1")]), Page(), "'like' looks for text"),
        (Search(filters=[Filter("t_exptime", "gt", "long")]), Page(), "is not one"),
        (Search(filters=[Filter("nope", "eq", "1")]), Page(), "filter: there is no column 'nope'"),
        (Search(filters=[Filter("obs_id", "between", "1")]), Page(), "unknown operator"),
        (
            Search(collections=["spherex_qr9"]),
            Page(),
            "holds no collection 'spherex_qr9'; it holds spherex_qr2",
        ),
        (Search(detectors=[7]), Page(), "detector: 7"),
        (Search(targets=[(10, 95)]), Page(), "off the sky"),
        (Search(targets=[NEP], radius=200), Page(), "sr:"),
        (Search(time=(5, 4)), Page(), "time_min"),
        (
            Search(targets=[NEP]),
            Page(columns=["obs_id", "bogus"]),
            "columns: there is no column 'bogus'",
        ),
        (Search(targets=[NEP]), Page(sort="bogus"), "sort: there is no column"),
        (Search(targets=[NEP]), Page(sort="s_region"), "region"),
        (Search(targets=[NEP]), Page(limit=5000), "limit"),
        (Search(targets=[NEP]), Page(offset=-1), "offset"),
    ],
)
def test_bad_parameters_are_named(services, search, page, words):
    with pytest.raises(BadParameter, match=words.replace("(", r"\(")):
        services["sqlite"].search(search, page)


def test_the_answer_carries_columns_links_and_adql(services, backend):
    found = services[backend].search(Search(targets=[NEP]), Page(limit=3))
    assert [c["name"] for c in found["columns"]] == list(ex.DEFAULT_COLUMNS)
    t_min = found["columns"][ex.DEFAULT_COLUMNS.index("t_min")]
    assert (t_min["datatype"], t_min["unit"]) == ("double", "d")
    link = found["links"][0]
    assert link["id"] == found["rows"][0][0]
    assert link["file"].startswith(f"{BASE}/ibe/data/spherex/qr2/level2/") and link[
        "file"
    ].endswith(".fits")
    assert link["cutout"] == link["file"]
    assert link["datalink"].startswith(f"{BASE}/datalink/links/spherex?ID=ivo%3A%2F%2F")
    assert link["preview"].startswith(f"{BASE}/datalink/preview/spherex?ID=")
    assert link["s3"] == "s3://nasa-irsa-spherex/" + link["file"].split("/ibe/data/spherex/")[1]
    adql = found["query"]["adql"]
    assert adql.startswith("SELECT TOP 3 obs_publisher_did, obs_collection") and "_uri" not in adql
    # What the user takes to TAP runs there and gives the same rows.
    engine = services[backend].engine
    assert [list(r) for r in engine.run(adql).rows] == found["rows"]


def test_calibration_files_have_no_cutout(services, backend):
    found = services[backend].search(Search(collections=["spherex_qr2_cal"]), Page(limit=5))
    assert found["links"] and all(link["cutout"] is None for link in found["links"])


def counting(service: ExplorerService) -> list[str]:
    """The queries ``service`` runs from now on that read more than a page's ids."""
    seen: list[str] = []
    run = service.engine.run

    class Counting:  # the same engine, noting what it runs
        catalogue = service.engine.catalogue

        def run(self, adql, **kw):
            if "obs_publisher_did IN (" not in str(adql):
                seen.append(str(adql))
            return run(adql, **kw)

    service.engine = Counting()
    return seen


@pytest.mark.parametrize("ordered", [True, False], ids=["ordered", "offset"])
def test_pages_are_read_once_until_the_catalogue_changes(
    services, catalogues, backend, ordered, monkeypatch
):
    if not ordered:  # more matches than the service keeps in order: OFFSET and a COUNT
        monkeypatch.setattr(ex, "MAX_ORDERED", 10)
    service = ExplorerService(services[backend].engine, services[backend].settings)
    reference = services[backend]
    seen = counting(service)
    search = Search(collections=["spherex_qr2_deep"])
    first = service.search(search, Page(limit=5))
    assert first["total"] == reference.count(where_clause(search, reference.collections()))
    for offset in (5, 10, 15, 55, 100):
        page = service.search(search, Page(limit=5, offset=offset))
        assert page["total"] == first["total"]
        assert page["rows"] == reference.search(search, Page(limit=5, offset=offset))["rows"]
    whole = [q for q in seen if "COUNT(*)" in q or "TOP 5 " not in q]
    assert len(whole) == (1 if ordered else 2)  # the order; or a failed try and a count
    catalogue = catalogues[backend]
    table = catalogue.dialect.internal("moc")
    (before,) = catalogue.fetchall(
        f"SELECT updated_at FROM {table} WHERE collection = 'spherex_qr2'"
    )[0]
    with catalogue.writer() as w:  # what an ingest into a collection does to its state
        w.execute(
            f"UPDATE {table} SET updated_at = ? WHERE collection = 'spherex_qr2'",
            ["2999-01-01 00:00:00"],
        )
    try:
        service.search(search, Page(limit=5, offset=5))
        assert len([q for q in seen if "COUNT(*)" in q or "TOP 5 " not in q]) == 2 * len(whole)
    finally:
        with catalogue.writer() as w:
            w.execute(
                f"UPDATE {table} SET updated_at = ? WHERE collection = 'spherex_qr2'", [before]
            )


def test_footprints(services, everything, backend):
    service = services[backend]
    found = service.footprints(Search(targets=[NEP], radius=1.0))
    page = service.search(
        Search(targets=[NEP], radius=1.0), Page(columns=["obs_publisher_did"], limit=1000)
    )
    assert found["ids"] == [r[0] for r in page["rows"]]  # the table's default order
    assert found["total"] == len(found["ids"]) and not found["truncated"]
    by_id = {r["obs_publisher_did"]: r for r in everything[backend]}
    for did, detector, polygon in zip(
        found["ids"], found["detectors"], found["polygons"], strict=True
    ):
        assert f"SPHEREx-D{detector}" == by_id[did]["energy_bandpassname"]
        words = by_id[did]["s_region"].split()
        assert words[:2] == ["POLYGON", "ICRS"]
        numbers = [float(w) for w in words[2:]]
        if numbers[:2] == numbers[-2:]:
            numbers = numbers[:-2]
        assert polygon == pytest.approx(numbers, abs=5e-5)
    cut = service.footprints(Search(targets=[NEP], radius=1.0), limit=5)
    assert cut["truncated"] and cut["total"] == len(found["ids"])
    assert cut["ids"] == found["ids"][:5]
    # Calibration files have no footprint; the total still counts them, as the table does.
    cal = service.footprints(Search(collections=["spherex_qr2_cal"]))
    cal_files = [r for r in everything[backend] if r["obs_collection"] == "spherex_qr2_cal"]
    assert cal["ids"] == [] and cal["total"] == len(cal_files) > 0
    with pytest.raises(BadParameter, match="limit"):
        service.footprints(Search(targets=[NEP]), limit=0)


def test_pages_carry_their_rows_footprints(services, everything, backend):
    found = services[backend].search(
        Search(targets=[NEP], radius=0.3), Page(columns=["obs_id"], limit=50)
    )
    by_id = {r["obs_publisher_did"]: r for r in everything[backend]}
    footprints = found["footprints"]
    assert len(footprints["polygons"]) == len(footprints["detectors"]) == len(found["rows"]) > 5
    for link, detector, polygon in zip(
        found["links"], footprints["detectors"], footprints["polygons"], strict=True
    ):
        row = by_id[link["id"]]  # the rows' own, although no such column was asked for
        assert f"SPHEREx-D{detector}" == row["energy_bandpassname"]
        assert polygon == pytest.approx(region_numbers(row["s_region"]), abs=5e-5)
    # Calibration files have none.
    cal = services[backend].search(Search(collections=["spherex_qr2_cal"]), Page(limit=5))
    assert cal["rows"] and cal["footprints"]["polygons"] == [None] * len(cal["rows"])


def region_numbers(region: str) -> list[float]:
    """The vertices of a stored ``POLYGON ICRS ...`` region, without the closing repeat."""
    numbers = [float(w) for w in region.split()[2:]]
    return numbers[:-2] if numbers[:2] == numbers[-2:] else numbers


def test_page_polygons_are_rounded_flat_lists():
    counts = np.array([3, 4])
    vertices = np.array([[1, 2], [3, 4], [5, 6.000049], [10, 20], [30, 40], [50, 60], [70, 80]])
    assert ex.rounded_polygons(counts, vertices) == [
        [1, 2, 3, 4, 5, 6],
        [10, 20, 30, 40, 50, 60, 70, 80],
    ]
    assert ex.rounded_polygons(np.array([], dtype=int), np.zeros((0, 2))) == []


def read_binary(block: bytes) -> dict:
    """The binary footprint block as its JSON form (docs/explorer.md: the layout)."""
    assert block[:4] == b"SXF1"
    (size,) = struct.unpack_from("<I", block, 4)
    assert size % 4 == 0
    header = json.loads(block[8 : 8 + size])
    n, v = header["count"], header["vertices"]
    at = 8 + size
    coords = np.frombuffer(block, "<f4", 2 * v, at)
    counts = np.frombuffer(block, "<u2", n, at + 8 * v)
    detectors = np.frombuffer(block, "u1", n, at + 8 * v + 2 * n)
    assert len(block) == at + 8 * v + 3 * n
    ends = np.cumsum(counts) * 2
    return {
        "total": header["total"],
        "truncated": header["truncated"],
        "ids": header["ids"],
        "detectors": [int(d) or None for d in detectors],
        "polygons": [p.tolist() for p in np.split(coords.astype(float), ends[:-1])],
    }


def test_binary_footprints_hold_what_json_does(services, backend):
    found = services[backend].footprint_set(Search(targets=[NEP], radius=1.0))
    as_json, as_binary = found.to_json(), read_binary(found.to_binary())
    assert len(as_json["ids"]) > 20
    for key in ("total", "truncated", "ids", "detectors"):
        assert as_binary[key] == as_json[key]
    exact = np.split(found.vertices.ravel(), np.cumsum(found.counts)[:-1] * 2)
    for a, b, c in zip(as_binary["polygons"], as_json["polygons"], exact, strict=True):
        assert a == pytest.approx(c, abs=1.6e-5)  # float32: half of 2**-15 deg at RA 256-512
        assert b == pytest.approx(c, abs=5e-5)  # JSON: 4 decimals


def test_footprints_count_from_the_kept_order(services, backend):
    service = ExplorerService(services[backend].engine, services[backend].settings)
    seen = counting(service)
    search = Search(targets=[NEP], radius=1.0)
    page = service.search(search, Page(limit=5))
    found = service.footprint_set(search)
    cut = service.footprint_set(search, limit=3)
    assert found.total == cut.total == page["total"] and cut.truncated and not found.truncated
    assert cut.ids == found.ids[:3]
    assert not [q for q in seen if "COUNT(" in q]  # the kept order's length, no second count
    footprint_reads = [q for q in seen if "s_region IS NOT NULL" in q]
    assert len(footprint_reads) == 2  # one per limit
    # Asked again (the same search and catalogue), they are not read again.
    assert service.footprint_set(search, limit=3) is cut
    assert len([q for q in seen if "s_region IS NOT NULL" in q]) == 2


def test_footprints_are_prefetched_once(services, backend):
    service = ExplorerService(services[backend].engine, services[backend].settings)
    seen = counting(service)
    search = Search(targets=[NEP], radius=1.0, detectors=[2])
    gate = threading.Event()
    run = service.engine.run

    class Held:  # the prefetch's reading waits until the request for it has come
        catalogue = service.engine.catalogue

        def run(self, adql, **kw):
            if "s_region IS NOT NULL" in str(adql):
                gate.wait(10)
            return run(adql, **kw)

    service.engine = Held()
    service.search(search, Page(limit=5))
    service.prefetch_footprints(search)
    waiting = threading.Timer(0.2, gate.set)
    waiting.start()
    found = service.footprint_set(search)  # waits for the prefetch's reading, reads nothing
    waiting.join()
    service._workers.shutdown(wait=True)  # whatever the worker read is counted
    assert found.ids and set(found.detectors.tolist()) == {2}
    assert len([q for q in seen if "s_region IS NOT NULL" in q]) == 1


def test_a_failed_footprint_reading_is_tried_again(services, backend):
    service = ExplorerService(services[backend].engine, services[backend].settings)
    search = Search(targets=[NEP], radius=0.5)
    run, failures = service.engine.run, [1]

    class Failing:
        catalogue = service.engine.catalogue

        def run(self, adql, **kw):
            if "s_region IS NOT NULL" in str(adql) and failures:
                failures.pop()
                raise QueryTimeout("stopped")
            return run(adql, **kw)

    service.engine = Failing()
    with pytest.raises(QueryTimeout):
        service.footprint_set(search)
    assert service.footprint_set(search).ids


def test_download_scripts(services, backend):
    service = services[backend]
    found = service.search(Search(targets=[NEP]), Page(limit=3))
    ids = [link["id"] for link in found["links"]]
    files = [link["file"] for link in found["links"]]
    text = service.script("curl", [*ids, ids[0]])
    lines = text.splitlines()
    assert lines[0] == "#!/bin/sh" and "3 SPHEREx file(s)" in lines[1]
    commands = [shlex.split(line) for line in lines if not line.startswith("#")]
    assert [c[-1] for c in commands] == files
    for command, file in zip(commands, files, strict=True):
        assert command[:4] == ["curl", "-f", "-C", "-"]
        assert command[command.index("-o") + 1] == file.rsplit("/", 1)[1]
    wget = [
        shlex.split(line) for line in service.script("wget", ids).splitlines() if line[0] != "#"
    ]
    assert [c[:2] for c in wget] == [["wget", "-c"]] * 3
    cutouts = service.script("wget", ids, cutout=(NEP[0], NEP[1], 60.0)).splitlines()
    assert "60 arcsec" in "\n".join(cutouts)
    first = next(line for line in cutouts if not line.startswith("#"))
    name = files[0].rsplit("/", 1)[1].removesuffix(".fits") + "_cutout.fits"
    assert first == (
        f"[ -s {name} ] || wget -O {name} '{files[0]}?center={NEP[0]!r},{NEP[1]!r}&size=60arcsec'"
    )
    with pytest.raises(UnknownDataset, match="ivo://nowhere"):
        service.script("wget", [ids[0], "ivo://nowhere"])
    with pytest.raises(BadParameter, match="kind"):
        service.script("aria2", ids)
