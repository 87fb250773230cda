"""What Align's before/after says it found (issue 21, item 2): a verdict per metric, a warning when
a judge gives (nearly) one score to everything, "too few to decide" below MIN_DECIDE held-out
labels, advice drawn from the labels, the comparison kept with the project, and the per-row table;
in the library, the Align tab and the CLI. Projects are hand-made: no model runs here except
where a calibrated judge is written."""

from types import SimpleNamespace

import numpy as np
import pytest

from app import align_compare, align_tab, own_files
from app.studio import RUN_PREFIX, Settings, Studio
from raft.align import compare_judges
from raft.align_findings import MIN_DECIDE, advice, collapse, findings, findings_markdown, save_findings, saved_findings
from raft.labels import LabelProject

FIELDS = {"orig_criteria": "helpful", **{f"orig_score{k}_description": f"d{k}" for k in range(1, 6)}}


def _rows(n, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        probs = rng.dirichlet(np.ones(5)).tolist()
        rows.append(
            {
                "orig_instruction": f"question {i}",
                "orig_response": f"answer {i}",
                **FIELDS,
                "probs": probs,
                "expected_score": float(np.dot(probs, range(1, 6))),
            }
        )
    return rows


def _project(folder, n=60, heldout=0.4, label=lambda k: 1 + k % 5):
    project = LabelProject.create(folder, _rows(n), heldout=heldout, seed=0)
    for key in project.keys:
        project.label(key, label(key))
    return project


def _collapsed_after(project, value=4.8):
    held = [k for k in project.keys if k in project.heldout]
    return [{"key": k, "expected_score": value + 0.05 * (k % 3)} for k in held]


def test_collapse_is_named_with_its_share_and_span():
    assert collapse([4.7, 4.8, 4.9, 4.8, 4.75], (1, 5))["score"] == 5
    assert collapse([1, 2, 3, 4, 5, 2.5], (1, 5)) is None
    c = collapse([3.0] * 9 + [1.0], (1, 5))
    assert c["share"] == pytest.approx(0.9) and c["score"] == 3


def test_a_collapsed_judge_is_warned_about_and_every_metric_has_a_verdict(tmp_path):
    project = _project(tmp_path / "p")
    after = _collapsed_after(project)
    report = compare_judges(project, after)
    found = findings(project, report, after, "run: tuned")
    assert found["n"] >= MIN_DECIDE and found["decided"]
    assert found["collapse"]["after"]["score"] == 5 and found["collapse"]["before"] is None
    assert set(found["verdicts"]) == {"pearson", "spearman", "mae", "exact"}
    assert all(v["verdict"] and v["verdict"] != "too few to decide" for v in found["verdicts"].values())
    allowed = ("after better", "before better", "no difference", "undecided")
    assert all(v["verdict"].startswith(allowed) for v in found["verdicts"].values())
    card = findings_markdown(found)
    assert "gives nearly one score to everything" in card and "round to 5" in card
    assert "| verdict |" in card and "[95% CI]" in card
    assert {r["key"] for r in found["rows"]} == {r["key"] for r in after}
    row = found["rows"][0]
    assert row["change"] == pytest.approx(
        abs(row["after"] - row["label"]) - abs(row["before"] - row["label"]), abs=0.02
    )


def test_below_the_stated_n_it_says_too_few_to_decide_and_shows_no_interval(tmp_path):
    project = _project(tmp_path / "p", n=16, heldout=0.3)
    after = [{"key": k, "expected_score": 3.0 + 0.3 * (k % 4)} for k in project.heldout]
    found = findings(project, compare_judges(project, after), after, "run: x")
    assert found["n"] < MIN_DECIDE and not found["decided"]
    assert {v["verdict"] for v in found["verdicts"].values()} == {"too few to decide"}
    assert all(v["lo"] is None and v["hi"] is None for v in found["verdicts"].values())
    card = findings_markdown(found)
    assert f"**Too few to decide**: {found['n']} held-out labels, and a verdict needs at least {MIN_DECIDE}" in card
    assert "[" not in card.split("| metric |")[1]  # no interval brackets in the table


def test_advice_from_skewed_and_few_labels(tmp_path):
    skewed = _project(tmp_path / "s", n=30, label=lambda k: 5 if k % 4 else 2)
    said = " ".join(advice(skewed))
    assert "skewed" in said and "**stratified**" in said and "**calibrate first**" in said
    balanced = _project(tmp_path / "b", n=120, heldout=0.3)
    assert advice(balanced) == []


def test_a_calibrated_judge_is_not_told_to_calibrate(tmp_path):
    """Newcomer walk: right after Calibrate, the advice still said "calibrate first" and the
    collapse warning about the calibrated judge said "or calibrate instead"."""
    project = _project(tmp_path / "p", n=30)
    after = _collapsed_after(project)
    card = findings_markdown(findings(project, compare_judges(project, after), after, "run: cal", calibrated=True))
    assert "calibrate first" not in card and "calibrate instead" not in card
    assert "This judge is calibrated on" in card and "calibrate again" in card
    plain = findings_markdown(findings(project, compare_judges(project, after), after, "run: tuned"))
    assert "**calibrate first**" in plain and "calibrate instead" in plain


def test_findings_are_kept_with_the_project_newest_first(tmp_path):
    project = _project(tmp_path / "p")
    after = _collapsed_after(project)
    report = compare_judges(project, after)
    save_findings(project, findings(project, report, after, "run: a"))
    save_findings(project, findings(project, report, after, "run: ../../b"))
    kept = saved_findings(LabelProject.open(project.folder))
    assert [k["judge"] for k in kept] == ["run: ../../b", "run: a"]
    files = sorted(p.name for p in (project.folder / "comparisons").iterdir())
    assert files == ["run________b.json", "run__a.json"]  # named from the judge, never a path


def visitor(name):
    return SimpleNamespace(username=None, session_hash=name, request=None)


@pytest.fixture
def studio(tmp_path, tiny_model):
    return Studio(Settings(data_root=tmp_path / "root", default_model=str(tiny_model)))


def _app_project(studio, request, label=lambda k: 1 + k % 5):
    folder = own_files.projects_dir(studio.workspace(request)) / "mine"
    project = LabelProject.create(folder, _rows(60), judge=None, heldout=0.4, seed=0)
    for key in project.keys:
        project.label(key, label(key))
    return project


def test_the_tab_shows_the_last_comparison_after_a_reload(studio):
    ada = visitor("ada")
    project = _app_project(studio, ada)
    text, table = align_tab.comparison(studio, "mine", request=ada)
    assert "No comparison yet" in text and list(table.columns) == align_compare.ROW_COLUMNS and table.empty
    after = _collapsed_after(project)
    save_findings(project, findings(project, compare_judges(project, after), after, "run: <b>x</b>"))
    text, table = align_tab.comparison(studio, "mine", request=ada)  # what a reload asks for
    assert "gives nearly one score to everything" in text and "| verdict |" in text
    assert "<b>" not in text and "&lt;b&gt;" in text  # the judge's name is user text
    assert len(table) == len(after) and list(table.columns) == align_compare.ROW_COLUMNS


def test_calibrate_in_the_tab_writes_a_judge_that_the_pickers_offer(studio):
    ada = visitor("ada")
    project = _app_project(studio, ada, label=lambda k: 2 + k % 3)
    text, table, picker = align_tab.calibrate(studio, "mine", request=ada)
    choice = picker.value
    assert choice.startswith(RUN_PREFIX + "calibrated-mine-")
    assert choice in [c if isinstance(c, str) else c[1] for c in studio.model_choices()]
    assert "A calibrated judge" in text and "| verdict |" in text and len(table) == len(project.heldout)
    kept = saved_findings(project)
    assert kept[0]["judge"] == choice and len(kept[0]["levels"]) == 5
    judge = studio.judge(choice)
    assert judge.calibration is not None and judge.calibration.levels == pytest.approx(kept[0]["levels"], abs=1e-3)


def test_calibrate_is_refused_where_new_judges_are_off(tmp_path, tiny_model):
    import gradio as gr

    closed = Studio(Settings(data_root=tmp_path / "root", default_model=str(tiny_model), allow_training=False))
    ada = visitor("ada")
    _app_project(closed, ada)
    with pytest.raises(gr.Error, match="off on this studio"):
        align_tab.calibrate(closed, "mine", request=ada)


def test_the_cli_calibrates_and_prints_the_findings(tmp_path, tiny_model, capsys):
    from raft.cli import main

    project = _project(tmp_path / "p", label=lambda k: 2 + k % 3)
    out = tmp_path / "calibrated"
    assert (
        main(["label", "calibrate", "--project", str(project.folder), "--out", str(out), "--judge", str(tiny_model)])
        == 0
    )
    printed = capsys.readouterr().out
    assert "### Before / after on" in printed and "| verdict |" in printed and "A calibrated judge" in printed
    assert (out / "judge.json").is_file() and saved_findings(project)[0]["judge"] == "calibrated"


def test_a_judge_that_matches_the_labels_is_named_better(tmp_path):
    project = _project(tmp_path / "p", n=80)
    labels = project.labels()
    after = [{"key": k, "expected_score": labels[k] + 0.1} for k in project.heldout]
    found = findings(project, compare_judges(project, after), after, "run: good")
    assert found["verdicts"]["mae"]["verdict"] == "after better"
    assert found["verdicts"]["pearson"]["verdict"] == "after better"
    assert found["collapse"]["after"] is None


def test_the_agreement_panel_says_too_few_to_decide_instead_of_intervals_on_a_few_rows(tmp_path):
    from raft.align import agreement, agreement_markdown

    project = LabelProject.create(tmp_path / "p", _rows(20), heldout=0.3, seed=0)
    for key in sorted(project.heldout)[:3]:
        project.label(key, 3)
    text = agreement_markdown(agreement(project))
    assert "(n = 3): **too few to decide**" in text and "[" not in text.split("| metric |")[1]
    many = _project(tmp_path / "q", n=60)
    assert "95% bootstrap intervals" in agreement_markdown(agreement(many))
