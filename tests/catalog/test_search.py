"""Search by patient, accession, date range, modality and description: right rows, sorted, through indexes."""

from __future__ import annotations

import time
from pathlib import Path

from medviewer.catalog import Importer, check_missing, connect, search
from medviewer.catalog.search import search_query, tree


def test_search_on_the_dicomdir_tree(dicomdir_tree: Path):
    Importer([dicomdir_tree]).run()
    conn = connect()
    everything = search(conn)
    assert len(everything) == 13
    assert [h.patient_name for h in everything] == sorted(h.patient_name for h in everything)
    names = {h.patient_name for h in everything}
    assert names == {"Doe^Archibald", "Doe^Peter"}
    peter = search(conn, patient="peTER")  # case-insensitive substring
    assert peter and {h.patient_name for h in peter} == {"Doe^Peter"}
    assert search(conn, patient="77654033") == [h for h in everything if h.patient_id == "77654033"]
    assert search(conn, patient="no such person") == []
    for hit in search(conn, modality="ct"):
        assert hit.modality == "CT"
    assert {h.modality for h in search(conn, modality="mr")} == {"MR"}
    dates = sorted({h.study_date for h in everything})
    ranged = search(conn, date_from=dates[1], date_to=dates[-2])
    assert ranged and all(dates[1] <= h.study_date <= dates[-2] for h in ranged)
    assert len(ranged) == sum(dates[1] <= h.study_date <= dates[-2] for h in everything)
    accession = next(h.accession for h in everything if h.accession)
    assert {h.accession for h in search(conn, accession=accession)} == {accession}
    assert search(conn, patient="%") == []  # LIKE wildcards are taken literally


def test_missing_instances_are_counted_per_series_in_search_and_tree(generated):
    folder = generated("data", 20)
    Importer([folder]).run()
    conn = connect()
    assert {h.missing for h in search(conn)} == {0}
    gone = sorted(folder.rglob("*.dcm"))[:3]
    for path in gone:
        path.unlink()
    check_missing(conn)
    per_series = (
        "SELECT se.series_uid, count(*) FROM instances i JOIN series se ON se.id = i.series_ref"
        " WHERE i.path IN (?, ?, ?) GROUP BY se.series_uid"
    )
    expected = dict(conn.execute(per_series, [str(p) for p in gone]))
    hits = search(conn)
    assert sum(h.missing for h in hits) == 3 and sum(h.instance_count for h in hits) == 20
    assert {h.series_uid: h.missing for h in hits if h.missing} == expected
    listed = [se for p in tree(conn) for st in p["studies"] for se in st["series"]]
    assert {se["series_uid"]: se["missing"] for se in listed if se["missing"]} == expected


def _synthetic_catalog(patients: int = 1000, studies_each: int = 5, series_each: int = 4, instances_each: int = 5):
    """100,000 instances under 1,000 patients, written straight into the tables."""
    conn = connect()
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO patients (id, patient_id, name) VALUES (?, ?, ?)",
        [(p, f"PID{p:05d}", f"Family{p:05d}^Given") for p in range(patients)],
    )
    study_rows, series_rows, instance_rows = [], [], []
    for s in range(patients * studies_each):
        study_rows.append(
            (s, s // studies_each, f"2.25.1.{s}", f"20{s % 20:02d}0{1 + s % 9}15", f"ACC{s:06d}", "CT HEAD")
        )
        for k in range(series_each):
            se = s * series_each + k
            series_rows.append((se, s, f"2.25.2.{se}", ("CT", "MR", "SEG", "SR")[k], f"series {k}", k + 1))
            instance_rows += [
                (se, f"/data/{se}/{i}.dcm", f"/data/{se}/{i}.dcm", f"2.25.3.{se}.{i}", i, 1, 1)
                for i in range(instances_each)
            ]
    conn.executemany(
        "INSERT INTO studies (id, patient_ref, study_uid, study_date, accession, description)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        study_rows,
    )
    conn.executemany(
        "INSERT INTO series (id, study_ref, series_uid, modality, description, series_number, instance_count)"
        f" VALUES (?, ?, ?, ?, ?, ?, {instances_each})",
        series_rows,
    )
    conn.executemany(
        "INSERT INTO instances (series_ref, path, source_path, sop_uid, instance_number, size, mtime_ns)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        instance_rows,
    )
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    return conn


def _plan(conn, **criteria) -> str:
    sql, params = search_query(**criteria)
    return "\n".join(row[-1] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params))


def test_search_on_100k_instances_uses_indexes_and_is_fast():
    conn = _synthetic_catalog()
    assert conn.execute("SELECT count(*) FROM instances").fetchone()[0] == 100_000

    plan = _plan(conn, patient="family00042")
    assert "USING INDEX studies_patient" in plan and "USING INDEX series_study" in plan
    assert "SCAN st" not in plan and "SCAN se" not in plan  # only the small patients table is scanned
    assert "SEARCH i USING INDEX instances_series" in plan  # missing instances are counted per series
    assert "USING INDEX studies_accession" in _plan(conn, accession="ACC000123")
    assert "studies_date" in _plan(conn, date_from="20050101", date_to="20050131")

    started = time.perf_counter()
    hits = search(conn, patient="family00042")
    by_accession = search(conn, accession="ACC000123")
    by_date = search(conn, date_from="20050101", date_to="20050131", modality="MR")
    elapsed = time.perf_counter() - started
    assert elapsed < 0.3, elapsed
    assert len(hits) == 20 and {h.patient_id for h in hits} == {"PID00042"}
    assert [h.series_number for h in hits[:4]] == [1, 2, 3, 4]
    assert [(h.accession, h.modality) for h in by_accession] == [("ACC000123", m) for m in ("CT", "MR", "SEG", "SR")]
    january_2005 = sum(1 for s in range(5000) if s % 20 == 5 and s % 9 == 0)  # the date pattern written above
    assert len(by_date) == january_2005 == 28 and all(
        h.study_date == "20050115" and h.modality == "MR" for h in by_date
    )
