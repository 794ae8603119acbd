"""The IVOA's ADQL test queries (shared/conformance/adql, from ivoa/lyonetia).

ivoa/ is the conformance suite an ADQL 2.1 parser must pass; gavo/ (Heidelberg) and roe/
(Edinburgh) are older suites whose authors' parsers differ from ivoa/ on a few points. Every
query is a test case, named <corpus>/<file>/<uuid>; where we knowingly disagree with a verdict
the case asserts our outcome instead, and the lists below say why.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import pytest

from spherex_archive.adql import AdqlSyntaxError, parse, to_adql

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "conformance" / "adql"
if not CORPUS.is_dir():
    pytest.skip(f"no ADQL conformance corpus at {CORPUS}", allow_module_level=True)

# Queries marked invalid only for what a parser cannot know: they are syntactically ADQL and the
# later name-resolution step rejects them. Keyed by (corpus, uuid).
SEMANTIC_ONLY = {
    # "my_undefined_function(ra, dec)": grammatically a user-defined function call; whether the
    # service offers such a function is in its TAPRegExt metadata, checked at name resolution.
    ("ivoa", "29c75d48-e525-4e92-af3f-c5e8f3e5f26c"),
    # "TAN2(x)": the same, a call of an undeclared function (TAN2 is not a reserved word).
    ("gavo", "3a38115a-4509-11e6-8c55-592ac18c5eb7"),
}

# gavo/ accepts a JOIN without ON or USING ("allowed by the grammar but senseless", says its
# own description); ivoa/2_from.xml d4c3a72c rejects exactly that, and we follow ivoa/.
JOIN_WITHOUT_CONDITION = {
    ("gavo", uuid)
    for uuid in [
        "ab9be5d0-4458-11e6-96e2-28b2bdcff70b",  # t1 JOIN t2
        "b8823240-4458-11e6-96e2-28b2bdcff70b",  # t1 LEFT OUTER JOIN t2
        "bdcc3002-4458-11e6-96e2-28b2bdcff70b",  # t1 RIGHT OUTER JOIN t2
        "c24cec5c-4458-11e6-96e2-28b2bdcff70b",  # t1 FULL OUTER JOIN t2
        "d4c3a72c-4458-11e6-96e2-28b2bdcff70b",  # t1 INNER JOIN (t2 JOIN t3)
        "dbef92f4-4458-11e6-96e2-28b2bdcff70b",  # (t1 JOIN t4) FULL OUTER JOIN (t2 JOIN t3)
        "50cf9e14-4cfd-11e6-9064-032db3af9290",  # spatial JOIN spatial2 WHERE ...
        "9db41c44-450c-11e6-8564-332de33a5c03",  # "abc-g" JOIN "select"
        "e257048e-450b-11e6-a621-b59840aabaf1",  # (...) AS r join (...) AS p
        "1f5d27dc-450c-11e6-8564-332de33a5c03",  # the same with schema-qualified tables
    ]
}


class Case(NamedTuple):
    corpus: str
    uuid: str
    valid: bool
    text: str


def _cases() -> list[pytest.param]:
    params, seen = [], Counter()
    for path in sorted(CORPUS.glob("*/*.xml")):
        corpus = path.parent.name
        for query in ET.parse(path).getroot().iter("query"):
            adql = query.find("adql")
            uuid = query.get("uuid") or "no-uuid"
            name = f"{corpus}/{path.stem}/{uuid}"
            seen[name] += 1
            if seen[name] > 1:  # a few uuids repeat within a file
                name += f"#{seen[name]}"
            case = Case(corpus, uuid, adql.get("valid") == "true", adql.text)
            params.append(pytest.param(case, id=name))
    return params


CASES = _cases()


def _expected_to_parse(case: Case) -> bool:
    key = (case.corpus, case.uuid)
    if key in SEMANTIC_ONLY:
        return True
    if key in JOIN_WITHOUT_CONDITION:
        return False
    return case.valid


@pytest.mark.parametrize("case", CASES)
def test_query(case: Case) -> None:
    if _expected_to_parse(case):
        tree = parse(case.text)
        assert parse(to_adql(tree)) == tree
    else:
        with pytest.raises(AdqlSyntaxError) as error:
            parse(case.text)
        assert str(error.value).startswith(f"line {error.value.line}, column ")


def test_every_corpus_is_there() -> None:
    counts = Counter(case.values[0].corpus for case in CASES)
    assert counts["ivoa"] >= 190 and counts["gavo"] >= 280 and counts["roe"] >= 10
