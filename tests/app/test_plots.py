"""Plots a reader trusts: n beside correlations (none under 5 rows), whole-number steps, log ticks
labelled in full, correlations and errors apart, means per gold value in order, no empty bins."""

from app import plots
from raft.report import build_report


def _progress(n_val, steps=4):
    rows = [{"step": s, "loss": 0.9 / (s + 1), "total_steps": steps} for s in range(1, steps + 1)]
    evals = [
        {"step": s, "eval": {"n": n_val, "pearson": (-1) ** s, "spearman": 0.1, "kendall": 0.1, "rmse": 1.2}}
        for s in (0, 2, 4)
    ]
    return rows + evals


def test_validation_correlations_carry_n_and_are_not_drawn_on_too_few_rows():
    fig = plots.eval_curve(_progress(2))
    pearson = next(t for t in fig.data if t.name.startswith("pearson"))
    # the legend says what the page says: not computed (never "n = 2" beside "need at least 5")
    assert pearson.name == "pearson (not computed, n < 5)" and all(v is None for v in pearson.y)
    rmse = next(t for t in fig.data if t.name.startswith("rmse"))
    assert rmse.name == "rmse (n = 2)"  # an error is computed on any n
    assert rmse.yaxis != pearson.yaxis  # errors on their own axis
    assert "need at least 5" in fig.layout.annotations[0].text
    fig = plots.eval_curve(_progress(20))
    pearson = next(t for t in fig.data if t.name.startswith("pearson"))
    assert pearson.name == "pearson (n = 20)" and list(pearson.y) == [1, 1, 1]


def test_step_axes_are_whole_numbers_and_log_ticks_are_labelled_in_full():
    fig = plots.loss_curve([{"step": 1, "loss": 0.5}], log_scale=True)
    assert fig.layout.xaxis.dtick == 1 and fig.layout.xaxis.tickformat == "d" and fig.layout.xaxis.tick0 == 0
    assert (
        fig.layout.yaxis.type == "log" and "0.5" in fig.layout.yaxis.ticktext and "5" not in fig.layout.yaxis.ticktext
    )
    fig = plots.loss_curve([{"step": s, "loss": 2.0 / s} for s in range(1, 201)])
    assert fig.layout.xaxis.dtick == 20
    assert plots.log_ticks([0.3, 2.5])["ticktext"] == ["0.2", "0.5", "1", "2", "5"]


def test_expected_vs_gold_is_the_mean_per_gold_value_in_gold_order():
    from raft.report_html import mean_by_gold

    assert mean_by_gold([3, 1, 3, 2, 1], [4.0, 1.0, 2.0, 2.5, 2.0]) == [
        {"gold": 1.0, "expected": 1.5, "n": 2},
        {"gold": 2.0, "expected": 2.5, "n": 1},
        {"gold": 3.0, "expected": 3.0, "n": 2},
    ]
    fig = plots.agreement_scatter([1, 2, 3, 4, 5, 1, 2], [1.2, 2.1, 2.9, 4.2, 4.8, 1.0, 2.5], (1, 5))
    line = next(t for t in fig.data if t.name == "mean expected per gold value")
    assert list(line.x) == [1, 2, 3, 4, 5] and "Pearson" in fig.layout.title.text and "(n = 7)" in fig.layout.title.text
    assert "Pearson" not in plots.agreement_scatter([1, 2], [2.0, 1.0], (1, 5)).layout.title.text


def _report():
    rows = [
        {
            "row": i,
            "orig_score": 1 + i % 5,
            "expected_score": 1 + i % 5 + 0.3,
            "probs": [0.9, 0.025, 0.025, 0.025, 0.025],
        }
        for i in range(30)
    ]
    return build_report(rows)


def test_report_figures_keep_correlations_and_errors_apart_with_n_and_skip_empty_bins():
    from raft.report_html import expected_vs_gold, figures, reliability

    report = _report()
    metrics = figures(report)["metrics"]
    left, right = metrics.data
    assert "rmse" not in left.x and list(right.x) == ["rmse", "mae"] and left.xaxis != right.xaxis
    assert "(n = 30)" in metrics.layout.title.text and all(
        len(t.replace("-", "").replace(".", "")) <= 4 for t in left.text
    )
    line = reliability(report).data[1]
    assert len(line.x) == sum(1 for b in report["calibration"]["reliability"] if b["n"] > 0)
    assert all(y is not None for y in line.y)
    means = expected_vs_gold(report).data[1]
    assert list(means.x) == sorted(means.x) and "mean expected score per gold value" == means.name
