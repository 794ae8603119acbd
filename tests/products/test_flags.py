import numpy as np
from astropy.io import fits

from spherex_archive.products.flags import (
    FLAGS_V20,
    FLAGS_V21,
    count_flags,
    flag_bits,
    flags_from_header,
    unusable_mask_value,
)


def test_versions_differ_by_the_ghost_and_artefact_bits():
    assert set(FLAGS_V21) - set(FLAGS_V20) == {
        "GHOST",
        "GHOST_FPA",
        "GHOST_EXT",
        "BLOOM",
        "SNOWBALL",
        "HALO",
    }
    assert flag_bits(20) is FLAGS_V20
    assert flag_bits(22) is FLAGS_V21


def test_unusable_excludes_informational_bits():
    value = unusable_mask_value(FLAGS_V21)
    for name in ("SOURCE", "OVERFLOW", "FULLSAMPLE", "OUTLIER"):
        assert not value & (1 << FLAGS_V21[name])
    for name in ("TRANSIENT", "NONFUNC", "HOT", "GHOST"):
        assert value & (1 << FLAGS_V21[name])
    # The Source Discovery Tool's good values 0, 2 and 2**21 are all usable.
    assert all(not v & value for v in (0, 2, 2**21))


def test_flags_from_header_reads_plain_and_hierarch_cards():
    header = fits.Header()
    header.append(fits.Card("MP_HOT", 10))
    header.append(fits.Card("HIERARCH MP_TRANSIENT", 0))
    header["OTHER"] = 1
    assert flags_from_header(header) == {"HOT": 10, "TRANSIENT": 0}


def test_count_flags():
    flags = np.array([[1, 3], [0, 1 << 21]], dtype=np.int32)
    counts = count_flags(flags, FLAGS_V20)
    assert counts["TRANSIENT"] == 2 and counts["OVERFLOW"] == 1 and counts["SOURCE"] == 1
