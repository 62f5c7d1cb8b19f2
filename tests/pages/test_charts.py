"""The SVG builders: labelled, with a table fallback, values printed, text escaped."""

from __future__ import annotations

import re

from analytics import charts


def test_bar_chart_is_labelled_and_has_a_table() -> None:
    html = str(charts.bar_chart(title="Revenue <by> month", labels=["2026-01", "2026-02"], values=[10, 30],
                                value_name="Revenue", label_name="Month"))
    svg_id = re.search(r'aria-labelledby="([^ ]+)-t \1-d"', html)
    assert svg_id, html[:300]
    assert 'role="img"' in html
    assert f'<title id="{svg_id.group(1)}-t">Revenue &lt;by&gt; month</title>' in html
    assert "<table" in html
    assert "<th scope=\"row\">2026-02</th><td>30</td>" in html
    # The taller bar is three times the shorter one: heights scale with value on a 0-based axis.
    heights = [float(h) for h in re.findall(r'<rect class="bar" [^>]*height="([0-9.]+)"', html)]
    assert len(heights) == 2
    assert abs(heights[1] / heights[0] - 3) < 0.01


def test_missing_values_draw_nothing_but_stay_in_the_table() -> None:
    html = str(charts.bar_chart(title="t", labels=["a", "b"], values=[None, 5], value_name="v"))
    assert html.count('<rect class="bar"') == 1
    assert "<th scope=\"row\">a</th><td>–</td>" in html


def test_line_chart_series_differ_by_more_than_colour() -> None:
    html = str(charts.line_chart(title="CRR and churn", labels=["a", "b", "c"],
                                 series=[charts.Series("CRR", [50, 60, None]), charts.Series("Churn", [10, 20, 30])]))
    assert 'stroke-dasharray="6 4"' in html  # the second series is dashed
    assert "<circle" in html
    assert 'class="marker s2"' in html
    assert html.count("<polyline") == 2
    assert ">CRR<" in html
    assert ">Churn<" in html


def test_heatmap_prints_every_value_and_shades_by_size() -> None:
    html = str(charts.heatmap(title="Grid", row_labels=["R2", "R1"], col_labels=["F1", "F2"],
                              values=[[0, 8], [4, None]], row_name="Recency", col_name="Frequency"))
    assert 'class="cell h4"' in html
    assert 'class="cell h0"' in html
    assert 'class="cell h2"' in html
    assert 'class="cell empty"' in html
    texts = re.findall(r'<text class="cell-text[^"]*"[^>]*>([^<]*)</text>', html)
    assert texts == ["0", "8", "4"]


def test_histogram_labels_bins() -> None:
    html = str(charts.histogram(title="Gaps", bins=["0–7 days", "8–14 days"], counts=[3, 1]))
    assert "0–7 days" in html
    assert "<td>3</td>" in html
