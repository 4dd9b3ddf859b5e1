from experiments.report import table, update_section


def test_sections_are_replaced_in_place(tmp_path):
    path = tmp_path / "RESULTS.md"
    update_section("a", "first", path)
    update_section("b", "second", path)
    update_section("a", "third", path)
    text = path.read_text()
    assert "first" not in text and text.index("third") < text.index("second")


def test_table_formats_floats():
    assert table(["x", "y"], [[1, 0.123456]]).splitlines()[-1] == "| 1 | 0.1235 |"
