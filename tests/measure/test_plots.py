"""`vitprune compare --plot` on the shipped reference results: readable at a glance."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def figure_and_comparison():
    import matplotlib.pyplot as plt

    from vitprune_export.measure.compare import build_comparison
    from vitprune_export.measure.plots import draw_comparison
    from vitprune_export.measure.results import load_results, reference_results

    comparison = build_comparison(load_results([reference_results()]), baseline="none")
    figure = draw_comparison(comparison)
    yield figure, comparison
    plt.close(figure)


def test_one_legend_names_every_method_and_the_baseline(figure_and_comparison):
    figure, comparison = figure_and_comparison
    [legend] = figure.legends
    labels = [text.get_text() for text in legend.get_texts()]
    methods = {row.method for row in comparison.rows}
    assert set(labels) == (methods - {"none"}) | {"none (baseline)"}


def test_axes_start_at_zero_with_units(figure_and_comparison):
    figure, _ = figure_and_comparison
    for axis in figure.axes:
        assert axis.get_xlim()[0] == 0 and axis.get_ylim()[0] == 0
        assert "(ms)" in axis.get_ylabel() + axis.get_xlabel()


def test_a_method_has_one_colour_in_every_panel_and_error_bars_from_its_spread(figure_and_comparison):
    from matplotlib.colors import to_hex

    figure, comparison = figure_and_comparison
    colours: dict[str, set[str]] = {}
    for axis in figure.axes:
        assert not axis.texts, "labels on the points collide; the legend names them"
        for container in axis.containers:
            colours.setdefault(container.get_label(), set()).add(to_hex(container.lines[0].get_color()))
            [bars] = container.lines[2]
            heights = [abs(segment[1][1] - segment[0][1]) for segment in bars.get_segments()]
            assert all(height > 0 for height in heights), container.get_label()
    assert set(colours) == {row.method for row in comparison.rows}
    assert all(len(found) == 1 for found in colours.values()), colours
    assert len({next(iter(found)) for found in colours.values()}) == len(colours), "two methods share a colour"


def test_compare_writes_the_plot(tmp_path, monkeypatch):
    """With --references, a results/ folder that holds only the runners' cache (OpenVINO's compiled
    models) is not a folder of results to read: the references alone make the table."""
    from typer.testing import CliRunner

    from vitprune_export.cli import app

    monkeypatch.chdir(tmp_path)
    (tmp_path / "results" / "cache" / "openvino").mkdir(parents=True)
    (tmp_path / "results" / "cache" / "openvino" / "model.blob").write_bytes(b"\0")
    target = tmp_path / "latency.png"
    result = CliRunner().invoke(app, ["compare", "--references", "--plot", str(target)])
    assert result.exit_code == 0, result.output
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
