"""The trips shape's inputs (shapes.trips.inputs): the zone table, the persons and the target tables are
read and checked together before any work, and every problem is one SpecError naming the file, the
column, the row or the value. A small synthetic case (6 zones in 2 districts, 20 persons, 56 trips)
is written to tmp_path; each bad case changes one thing in it."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from llmsynthor.cli import app
from llmsynthor.core.errors import SpecError
from llmsynthor.declarations.zones import read_zones
from llmsynthor.shapes.trips.inputs import PERSONS, TRIPS, read_inputs, read_persons
from llmsynthor.shapes.trips.spec import load

runner = CliRunner()

ZONES = """zone,district,households,jobs,lon,lat
1,D1,120,900,-122.400,37.790
2,D1,300,200,-122.410,37.780
3,D1,250,150,-122.420,37.770
4,D2,400,100,-122.270,37.800
5,D2,350,600,-122.260,37.810
6,D2,200,300,-122.250,37.820
"""
TYPES = ["worker"] * 8 + ["student"] * 6 + ["other"] * 6
HOMES = [1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6, 2, 3, 4, 5, 1, 6, 2, 5]
PERSON_IDS = [str(100 + i) for i in range(20)]
PERSONS_CSV = "person_id,household_id,home_zone,person_type\n" + "".join(
    f"{pid},{50 + i // 2},{home},{kind}\n" for i, (pid, home, kind) in enumerate(zip(PERSON_IDS, HOMES, TYPES)))
TRIPS_TOTAL = 56
TABLES = {
    "od_period.csv": """origin_district,destination_district,depart,count
D1,D1,"[0,12)",10
D1,D1,"[12,23]",8
D1,D2,"[0,12)",6
D1,D2,"[12,23]",4
D2,D1,"[0,12)",4
D2,D1,"[12,23]",6
D2,D2,"[0,12)",9
D2,D2,"[12,23]",9
""",
    "origin.csv": "origin,count\n1,12\n2,9\n3,7\n4,10\n5,10\n6,8\n",
    "mode_purpose.csv": """mode,purpose,count
drive alone,home,12
drive alone,work,6
drive alone,school,2
drive alone,shopping,8
walk,home,8
walk,work,2
walk,school,4
walk,shopping,3
transit,home,4
transit,work,4
transit,school,2
transit,shopping,1
""",
    # 4 persons with 0 trips, 10 with 2-3, 6 with 4-8: 20 to 82 trips, the trip tables' 56 among them
    "trips_per_person.csv": """person_type,trips,count
worker,"[0,2)",1
worker,"[2,4)",4
worker,"[4,8]",3
student,"[0,2)",1
student,"[2,4)",3
student,"[4,8]",2
other,"[0,2)",2
other,"[2,4)",3
other,"[4,8]",1
""",
}


def spec_dict() -> dict:
    return {
        "kind": "trips", "name": "small", "seed": 3,
        "zones": {"file": "zones.csv", "id": "zone", "district": "district", "households": "households", "jobs": "jobs",
                  "lon": "lon", "lat": "lat", "attractions": {"work": "jobs"}},
        "persons": {"file": "persons.csv", "id": "person_id", "household": "household_id", "home": "home_zone",
                    "variables": {"person_type": {"type": "categorical", "values": ["worker", "student", "other"]}}},
        "trips": {"purposes": ["home", "work", "school", "shopping"], "home": "home",
                  "modes": ["drive alone", "walk", "transit"], "car_modes": ["drive alone"], "max_trips": 8},
        "targets": [
            {"name": "OD by period", "variables": ["origin_district", "destination_district", "depart"], "file": "targets/od_period.csv"},
            {"name": "origin", "variables": ["origin"], "file": "targets/origin.csv"},
            {"name": "mode x purpose", "variables": ["mode", "purpose"], "file": "targets/mode_purpose.csv"},
            {"name": "trips per person", "variables": ["person_type", "trips"], "file": "targets/trips_per_person.csv"},
        ],
        "candidates": 8,
        "llm": {"backend": "none"},
    }


def write_case(folder: Path, *, zones: str = ZONES, persons: str = PERSONS_CSV, tables: dict | None = None,
               spec: dict | None = None) -> Path:
    """The small trips case in ``folder`` (files replaced as given); the spec's path."""
    folder = Path(folder)
    (folder / "targets").mkdir(parents=True, exist_ok=True)
    (folder / "zones.csv").write_text(zones)
    (folder / "persons.csv").write_text(persons)
    for name, text in {**TABLES, **(tables or {})}.items():
        (folder / "targets" / name).write_text(text)
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec or spec_dict(), sort_keys=False))
    return folder / "spec.yaml"


def refused(tmp_path: Path, **changes) -> SpecError:
    """The SpecError the case with ``changes`` raises, whether at loading the spec or reading its files."""
    path = write_case(tmp_path / "case", **changes)
    with pytest.raises(SpecError) as error:
        read_inputs(load(path))
    return error.value


def text(error: SpecError) -> str:
    return " ".join(str(error).split())


# ---- the valid case


def test_the_small_case_reads_with_each_table_at_its_level_and_the_totals_agreeing(tmp_path):
    inputs = read_inputs(load(write_case(tmp_path)))
    assert inputs.zones.ids.tolist() == ["1", "2", "3", "4", "5", "6"] and inputs.zones.district.tolist()[2:4] == ["D1", "D2"]
    assert inputs.persons["person_id"].tolist() == PERSON_IDS
    assert inputs.persons["home_row"].tolist() == [h - 1 for h in HOMES]  # each person's home zone as its row
    assert inputs.trips == TRIPS_TOTAL
    levels = {t.name: t.level for t in inputs.tables}
    assert levels == {"OD by period": TRIPS.name, "origin": TRIPS.name, "mode x purpose": TRIPS.name,
                      "trips per person": PERSONS.name}
    totals = {t.name: float(t.region.sum()) for t in inputs.tables}
    assert totals == {"OD by period": 56.0, "origin": 56.0, "mode x purpose": 56.0, "trips per person": 20.0}
    od = next(t for t in inputs.tables if t.name == "OD by period")
    assert od.region.shape == (2, 2, 2) and od.region[0, 1].tolist() == [6.0, 4.0]  # D1 -> D2, before and after noon
    assert [a.labels for a in od.axes][:2] == [("D1", "D2"), ("D1", "D2")]
    assert od.axes[2].edges.tolist() == [0, 12, 24]  # the closed last bin [12,23] of integer hours is [12,24)
    per_person = next(t for t in inputs.tables if t.name == "trips per person")
    assert per_person.axes[1].edges.tolist() == [0, 2, 4, 9]
    assert per_person.region.sum(axis=1).tolist() == [8.0, 6.0, 2 + 3 + 1.0]  # worker, student, other, as in persons.csv


def test_a_table_of_shares_takes_its_levels_total(tmp_path):
    shares = "origin,share\n1,0.25\n2,0.25\n3,0.125\n4,0.125\n5,0.125\n6,0.125\n"
    inputs = read_inputs(load(write_case(tmp_path, tables={"origin.csv": shares})))
    origin = next(t for t in inputs.tables if t.name == "origin")
    assert origin.region.tolist() == [14.0, 14.0, 7.0, 7.0, 7.0, 7.0]


# ---- bad input: one SpecError naming the file, column, row or value


def test_a_trip_table_naming_a_zone_the_zone_table_lacks(tmp_path):
    error = refused(tmp_path, tables={"origin.csv": TABLES["origin.csv"].replace("6,8", "99,8")})
    assert "origin.csv" in text(error) and "column 'origin'" in text(error) and "'99'" in text(error)


def test_a_table_field_a_trips_spec_does_not_read_is_refused_naming_it(tmp_path):
    spec = spec_dict()
    spec["targets"][1]["tolerance_jsd"] = 0.02  # met within its TVD tolerance: a JS one would be silently ignored
    spec["targets"][2]["tolerance"] = 0.05
    message = text(refused(tmp_path, spec=spec))
    assert "targets[1] (origin)" in message and "'tolerance_jsd': not read in a trips spec" in message
    assert "targets[2] (mode x purpose)" in message and "'tolerance': not read" in message
    spec = spec_dict()
    spec["targets"][0]["tolerance_tvd"] = 0.02  # read: that table's own tolerance
    assert read_inputs(load(write_case(tmp_path / "read", spec=spec))).tolerance == (0.02, 0.01, 0.01, 0.01)


def test_a_person_whose_home_zone_the_zone_table_lacks(tmp_path):
    error = refused(tmp_path, persons=PERSONS_CSV.replace("105,52,6,", "105,52,99,"))
    message = text(error)
    assert "persons.csv" in message and "column 'home_zone' (home)" in message
    assert "row 7" in message and "zone '99' is not in the zone table" in message  # person 105 is on line 7 of the file


def test_a_zone_table_without_its_id_column(tmp_path):
    error = refused(tmp_path, zones=ZONES.replace("zone,", "taz,", 1))
    assert "zones.csv" in text(error) and "missing column(s) 'zone' (id)" in text(error) and "'taz'" in text(error)


def test_trip_tables_disagreeing_on_the_number_of_trips(tmp_path):
    error = refused(tmp_path, tables={"origin.csv": TABLES["origin.csv"].replace("6,8", "6,40")})  # 88 trips, not 56
    message = text(error)
    assert "origin.csv" in message and "counts 88 trips" in message
    assert "od_period.csv" in message and "counts 56" in message


def per_person(bins: dict[str, tuple[int, int, int]]) -> str:
    """A trips-per-person table: person type -> persons with [0,2), [2,4) and [4,8] trips."""
    return "person_type,trips,count\n" + "".join(f'{kind},"{b}",{n}\n' for kind, counts in bins.items()
                                                for b, n in zip(("[0,2)", "[2,4)", "[4,8]"), counts))


def test_trips_per_person_that_cannot_give_the_trips_the_trip_tables_count(tmp_path):
    at_most_one = per_person({"worker": (8, 0, 0), "student": (6, 0, 0), "other": (6, 0, 0)})  # 0 to 20 trips, not 56
    error = refused(tmp_path, tables={"trips_per_person.csv": at_most_one})
    message = text(error)
    assert "trips_per_person.csv" in message and "make 0 to 20 trips" in message and "count 56" in message


def test_trips_per_person_giving_more_trips_than_the_trip_tables_count(tmp_path):
    four_or_more = per_person({"worker": (0, 0, 8), "student": (0, 0, 6), "other": (0, 0, 6)})  # 80 to 160 trips
    error = refused(tmp_path, tables={"trips_per_person.csv": four_or_more})
    assert "trips_per_person.csv" in text(error) and "make 80 to 160 trips" in text(error)


def test_trips_per_person_is_checked_against_the_range_its_bins_give(tmp_path):
    """A bin [a,b) of integers holds a … b-1 trips: 16 persons of [2,4) and 4 of [0,2) make 32 to 52, short of 56;
    20 persons of [2,4) make 40 to 60, which holds 56."""
    short = per_person({"worker": (0, 8, 0), "student": (0, 6, 0), "other": (4, 2, 0)})
    with pytest.raises(SpecError, match="make 32 to 52 trips"):
        read_inputs(load(write_case(tmp_path / "short", tables={"trips_per_person.csv": short})))
    enough = per_person({"worker": (0, 8, 0), "student": (0, 6, 0), "other": (0, 6, 0)})  # 40 to 60 trips
    assert read_inputs(load(write_case(tmp_path / "within", tables={"trips_per_person.csv": enough}))).trips == 56


def test_a_table_of_persons_counting_other_than_the_persons_file(tmp_path):
    error = refused(tmp_path, tables={"trips_per_person.csv": TABLES["trips_per_person.csv"].replace('other,"[0,2)",2',
                                                                                                     'other,"[0,2)",12')})
    message = text(error)
    assert "trips_per_person.csv" in message and "counts 30 persons" in message and "the persons file has 20" in message


def test_an_unknown_person_type_in_the_persons_file(tmp_path):
    error = refused(tmp_path, persons=PERSONS_CSV.replace("110,55,5,student", "110,55,5,pensioner"))
    message = text(error)
    assert "persons.csv" in message and "column 'person_type', row 12: 'pensioner'" in message
    assert "['worker', 'student', 'other']" in message


def test_a_person_id_given_twice(tmp_path):
    error = refused(tmp_path, persons=PERSONS_CSV.replace("107,53,", "104,53,"))
    assert "persons.csv" in text(error) and "person id '104' is given more than once" in text(error)


def test_car_modes_naming_a_mode_that_is_not_declared(tmp_path):
    spec = spec_dict()
    spec["trips"]["car_modes"] = ["car"]
    error = refused(tmp_path, spec=spec)
    message = text(error)
    assert "spec.yaml" in message and "field 'trips'" in message and "car_modes ['car']" in message
    assert "'drive alone'" in message  # the modes declared


def test_a_table_naming_districts_when_the_zone_table_gives_none(tmp_path):
    spec = spec_dict()
    del spec["zones"]["district"]
    message = text(refused(tmp_path, spec=spec))
    assert "OD by period" in message and "origin_district" in message and "gives no districts" in message


def test_every_problem_of_the_persons_file_is_named_at_once(tmp_path):
    persons = (PERSONS_CSV.replace("105,52,6,", "105,52,99,").replace("110,55,5,student", "110,55,5,pensioner")
               .replace("107,53,", "104,53,"))
    error = refused(tmp_path, persons=persons)
    assert len(error.problems) == 3
    assert all("persons.csv" in p.location for p in error.problems)


def test_read_persons_is_refused_before_any_table_is_read(tmp_path):
    """The persons file is checked against the zone table alone: a broken target file does not hide its problem."""
    path = write_case(tmp_path / "case", persons=PERSONS_CSV.replace("105,52,6,", "105,52,99,"),
                      tables={"origin.csv": "not,a\ntable"})
    spec = load(path)
    with pytest.raises(SpecError, match="zone '99'"):
        read_persons(spec, read_zones(spec.zones, spec.base_dir, spec.source))
    with pytest.raises(SpecError, match="zone '99'"):
        read_inputs(spec)


HOUSEHOLDS_CSV = "household_id,cars,income\n" + "".join(f"{50 + i},{['0', '1', '2'][i % 3]},{1000 * i}\n" for i in range(10))
CARS = {"type": "categorical", "values": ["0", "1", "2"], "description": "cars in the household"}


def with_households(tmp_path: Path, households: str = HOUSEHOLDS_CSV, **changes) -> Path:
    """The small case with the persons' households (cars) given, and a table of persons by cars."""
    spec = spec_dict()
    spec["households"] = {"file": "households.csv", "id": "household_id", "variables": {"cars": CARS}}
    spec["targets"].append({"name": "persons by cars", "variables": ["cars"], "file": "targets/cars.csv"})
    spec.update(changes)
    cars = pd.read_csv(io.StringIO(HOUSEHOLDS_CSV), dtype=str).set_index("household_id")["cars"]
    mix = pd.Series([cars[str(50 + i // 2)] for i in range(20)]).value_counts()
    path = write_case(tmp_path / "case", spec=spec, tables={"cars.csv": "cars,count\n" + "".join(f"{c},{n}\n" for c, n in mix.items())})
    (path.parent / "households.csv").write_text(households)
    return path


def test_households_give_each_member_their_variables(tmp_path):
    inputs = read_inputs(load(with_households(tmp_path)))
    persons = inputs.persons.set_index("person_id")
    assert persons.loc["100", "cars"] == "0" and persons.loc["102", "cars"] == "1" and persons.loc["119", "cars"] == "0"
    assert len(inputs.households) == 10 and "persons by cars" in [t.name for t in inputs.tables]


def test_every_problem_of_the_households_file_is_named(tmp_path):
    broken = HOUSEHOLDS_CSV.replace("\n53,", "\n52,").replace("\n55,2,", "\n55,7,")
    path = with_households(tmp_path, households=broken)
    with pytest.raises(SpecError) as error:
        read_inputs(load(path))
    message = text(error.value)
    assert "household id '52' is given more than once" in message and "column 'cars', row 7: '7'" in message
    path = with_households(tmp_path, households=HOUSEHOLDS_CSV.replace("\n59,", "\n69,"))
    with pytest.raises(SpecError) as error:
        read_inputs(load(path))
    assert "household '59' is not in the households file" in text(error.value)


def test_households_need_the_persons_household_column(tmp_path):
    spec = spec_dict()
    spec["persons"] = {k: v for k, v in spec["persons"].items() if k != "household"}
    with pytest.raises(SpecError, match="households is given but persons.household is not"):
        load(with_households(tmp_path, persons=spec["persons"]))


# ---- the command line


def test_check_lists_the_tables_of_a_valid_case(tmp_path):
    result = runner.invoke(app, ["check", str(write_case(tmp_path))])
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "20 persons, 56 trips, 6 zones" in out and "ok: every file read and checked" in out
    assert re.search(r"trips per person\W+persons\W+9\W+20", out) and re.search(r"OD by period\W+trips\W+8\W+56", out)


def test_check_of_a_bad_case_exits_2_naming_the_problem_without_a_traceback(tmp_path):
    path = write_case(tmp_path, persons=PERSONS_CSV.replace("105,52,6,", "105,52,99,"))
    result = runner.invoke(app, ["check", str(path)])
    assert result.exit_code == 2, result.output
    out = " ".join(result.output.split())
    assert "invalid input" in out and "persons.csv" in out and "zone '99' is not in the zone table" in out
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)


def test_run_of_a_bad_case_exits_2_before_any_model_or_output(tmp_path, monkeypatch):
    import llmsynthor.api

    def no_backend(*args, **kwargs):
        raise AssertionError("a backend was made for a case with bad input")

    monkeypatch.setattr(llmsynthor.api, "make_backend", no_backend)
    path = write_case(tmp_path, tables={"origin.csv": TABLES["origin.csv"].replace("6,8", "6,40")})
    result = runner.invoke(app, ["run", str(path), "--out", str(tmp_path / "out"), "--llm", "none", "--no-cache"])
    assert result.exit_code == 2, result.output
    assert "counts 88 trips" in " ".join(result.output.split()) and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_a_table_of_persons_with_another_mix_than_the_persons_file_is_refused(tmp_path):
    # 6 workers, 6 students, 8 others against the file's 8 / 6 / 6: the same total, a mix that cannot be met
    mixed = TABLES["trips_per_person.csv"].replace('worker,"[2,4)",4', 'worker,"[2,4)",2').replace('other,"[2,4)",3', 'other,"[2,4)",5')
    message = text(refused(tmp_path, tables={"trips_per_person.csv": mixed}))
    assert "trips_per_person.csv" in message and "6 persons with person_type = worker; the persons file has 8" in message
    assert "2 persons placed otherwise" in message


def test_a_zone_table_without_centroids_is_refused_before_any_work(tmp_path):
    spec = spec_dict()
    del spec["zones"]["lon"], spec["zones"]["lat"]
    message = text(refused(tmp_path, spec=spec))
    assert "zones.csv" in message and "no centroids" in message and "'lon' and 'lat'" in message


def test_a_table_of_trips_crossed_with_a_person_variable_is_refused(tmp_path):
    spec = spec_dict()
    spec["targets"].append({"name": "type x mode", "variables": ["person_type", "mode"], "file": "targets/origin.csv"})
    message = text(refused(tmp_path, spec=spec))
    assert "type x mode" in message and "crosses trips with person_type" in message


def test_tables_of_persons_alone_are_refused(tmp_path):
    spec = spec_dict()
    spec["targets"] = [t for t in spec["targets"] if t["name"] == "trips per person"]
    assert "no table of trips" in text(refused(tmp_path, spec=spec))


def test_trips_counted_outside_the_spec_hours_are_refused(tmp_path):
    spec = spec_dict()
    spec["trips"]["first_hour"] = 12  # the OD table counts trips in [0,12)
    message = text(refused(tmp_path, spec=spec))
    assert "od_period.csv" in message and "outside first_hour 12" in message and "[0,12)" in message


@pytest.mark.parametrize("name", ["mode", "trips", "who", "person_id"])
def test_a_person_variable_named_like_the_trips_own_is_refused(tmp_path, name):
    spec = spec_dict()
    spec["persons"]["variables"] = {name: spec["persons"]["variables"]["person_type"]}
    assert f"persons.variables ['{name}']" in text(refused(tmp_path, spec=spec))


def test_attractions_and_matsim_modes_must_name_declared_values(tmp_path):
    spec = spec_dict()
    spec["zones"]["attractions"] = {"shoping": "jobs"}
    assert "zones.attractions names ['shoping']" in text(refused(tmp_path, spec=spec))
    spec = spec_dict()
    spec["trips"]["matsim_modes"] = {"car": "car"}
    assert "matsim_modes ['car'] are not among the modes" in text(refused(tmp_path / "again", spec=spec))
