import datetime as dt

import pytest

from spherex_archive.products.calibration import parse_calibration_filename
from spherex_archive.products.naming import (
    ObservationId,
    PlanningPeriod,
    ProductVersion,
    level2_key,
    parse_level2_filename,
    publisher_did,
)

REAL_NAME = "level2_2025W51_1A_0684_2D3_spx_l2b-v21-2025-354.fits"
REAL_KEY = "qr2/level2/2025W51_1A/l2b-v21-2025-354/3/" + REAL_NAME


def test_real_file_name_round_trips():
    name = parse_level2_filename(REAL_NAME)
    assert str(name.obsid) == "2025W51_1A_0684_2"
    assert name.detector == 3
    assert name.product.version == 21
    assert name.product.processed == dt.date(2025, 12, 20)
    assert level2_key("qr2", name.obsid, name.detector, name.product) == REAL_KEY


def test_expidn_matches_the_real_example():
    assert ObservationId.parse("2025W51_1A_0684_2").expidn(3) == 202551101068423


def test_publisher_did_as_irsa_writes_it():
    did = publisher_did("ivo://irsa.ipac", "spherex_qr2", "2025W51_1A_0684_2", 3)
    assert did == "ivo://irsa.ipac/spherex_qr2?2025W51_1A_0684_2/D3"


def test_product_version_string():
    assert str(ProductVersion(20, dt.date(2025, 9, 4))) == "l2b-v20-2025-247"


@pytest.mark.parametrize("bad", ["level2_2025W51_1A_0684_2D3.fits", "foo.fits", ""])
def test_not_a_level2_name(bad):
    with pytest.raises(ValueError):
        parse_level2_filename(bad)


def test_planning_period_parse_and_start():
    period = PlanningPeriod.parse("2025W51_2A")
    assert str(period) == "2025W51_2A"
    assert period.start == dt.datetime(2025, 12, 18, 12, tzinfo=dt.UTC)
    with pytest.raises(ValueError):
        PlanningPeriod.parse("2025-51")


@pytest.mark.parametrize(
    ("name", "family", "version", "det"),
    [
        ("abs_gain_matrix_D3_spx_cal-agm-v4-2025-161.fits", "abs_gain_matrix", 4, 3),
        ("dichroic_D4_spx_base-2025-158.fits", "dichroic", 0, 4),
        ("gain_factors_spx_base-2025-158.yaml", "gain_factors", 0, None),
        ("spectral_channels_spx_cal-sch-v1-2026-106.fits.gz", "spectral_channels", 1, None),
        ("solid_angle_pixel_map_D2_spx_cal-sapm-v2-2025-164.fits", "solid_angle_pixel_map", 2, 2),
    ],
)
def test_calibration_names_of_the_spec(name, family, version, det):
    product = parse_calibration_filename(name)
    assert (product.family, product.version, product.detector) == (family, version, det)
    assert product.filename == name
