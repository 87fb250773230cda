"""Calibrate to my labels: the monotone level map, its values on hand-made examples, and a
calibrated judge that serves like any other (judge.json carries the map)."""

import json

import numpy as np
import pytest

from raft.align_calibrate import calibrated_rows, fit_project_calibration
from raft.calibrated import write_calibrated_judge
from raft.calibration import Calibration, expected_scores, fit_level_map, fit_levels
from raft.files import DataError
from raft.judge import Judge, rail
from raft.labels import LabelProject

ONE_HOT = np.eye(5)


def test_one_hot_rows_map_each_level_to_the_mean_label_of_its_rows():
    # levels 1, 2, 3 seen; labels per level: 1 -> {2, 2}, 2 -> {3, 4}, 3 -> {5}; no pull to the levels
    probs = ONE_HOT[[0, 0, 1, 1, 2]]
    levels = fit_levels(probs, [2, 2, 3, 4, 5], (1, 5), prior=0.0)
    assert levels[:3] == pytest.approx([2.0, 3.5, 5.0], abs=1e-6)
    assert all(b >= a - 1e-9 for a, b in zip(levels, levels[1:]))


def test_a_judge_that_says_five_to_everything_is_mapped_to_the_graders_level():
    probs = np.tile([0.0, 0.0, 0.05, 0.15, 0.8], (20, 1))
    levels = fit_levels(probs, [3.0] * 20, (1, 5))
    assert expected_scores(probs[:1], (1, 5), levels)[0] == pytest.approx(3.0, abs=0.1)


def test_reversed_evidence_cannot_reverse_the_order():
    # the grader's labels fall as the judge's level rises: the best monotone map is flat
    probs = ONE_HOT[[0, 1, 2, 3, 4]]
    levels = fit_levels(probs, [5, 4, 3, 2, 1], (1, 5), prior=0.0)
    assert all(b >= a - 1e-9 for a, b in zip(levels, levels[1:]))
    assert max(levels) - min(levels) == pytest.approx(0.0, abs=1e-6)
    assert levels[0] == pytest.approx(3.0, abs=1e-6)


@pytest.mark.parametrize("seed", range(5))
def test_levels_are_monotone_and_inside_the_scale_on_random_data(seed):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(5), 30)
    levels = fit_levels(probs, rng.integers(1, 6, 30), (1, 5))
    assert all(b >= a - 1e-9 for a, b in zip(levels, levels[1:]))
    assert 1 <= min(levels) and max(levels) <= 5


def test_the_prior_keeps_an_unlabelled_level_near_its_own_value():
    probs = ONE_HOT[[0, 0, 1, 1]]  # levels 3..5 never seen
    levels = fit_levels(probs, [1, 1, 2, 2], (1, 5))
    assert levels[4] == pytest.approx(5.0, abs=0.05)


def test_a_level_map_calibration_round_trips_and_bad_maps_are_refused(tmp_path):
    cal = fit_level_map(ONE_HOT[[0, 1, 2, 3, 4, 4]], [1, 1, 2, 4, 5, 5], [1, 2, 3, 4, 5, 6], (1, 5))
    back = Calibration.load(cal.save(tmp_path / "cal.json"))
    assert back.levels == pytest.approx(cal.levels)
    expected, _, _, _ = rail(np.array([0.0, 0.0, 1.0, 0.0, 0.0]), [1, 2, 3, 4, 5], back)
    assert expected == pytest.approx(cal.levels[2])
    for levels in ([1, 2, 3], [5, 4, 3, 2, 1], [0, 1, 2, 3, 4]):
        (tmp_path / "bad.json").write_text(
            json.dumps({**json.loads((tmp_path / "cal.json").read_text()), "levels": levels})
        )
        with pytest.raises(ValueError, match="levels"):
            Calibration.load(tmp_path / "bad.json")


def _project(tmp_path, n=20, heldout=0.3):
    rows = []
    for i in range(n):
        level = i % 5
        probs = [0.02] * 5
        probs[level] = 0.92
        rows.append(
            {
                "orig_instruction": f"q{i}",
                "orig_response": f"a{i}",
                "orig_criteria": "helpful",
                **{f"orig_score{k}_description": f"d{k}" for k in range(1, 6)},
                "probs": probs,
                "expected_score": float(np.dot(probs, range(1, 6))),
            }
        )
    project = LabelProject.create(tmp_path / "p", rows, heldout=heldout, seed=0)
    for key in project.keys:  # the grader is one level lower than the judge's favourite, never below 1
        project.label(key, max(1, int(np.argmax(project.rows[key]["probs"]))))
    return project


def test_project_calibration_fits_on_training_labels_and_moves_held_out_rows_towards_them(tmp_path):
    project = _project(tmp_path)
    cal = fit_project_calibration(project)
    assert set(cal.fit_rows).isdisjoint(project.heldout)
    labels = project.labels()
    after = calibrated_rows(project, cal)
    assert {r["key"] for r in after} == {k for k in project.heldout if k in labels}
    before_mae = np.mean([abs(project.rows[r["key"]]["expected_score"] - labels[r["key"]]) for r in after])
    after_mae = np.mean([abs(r["expected_score"] - labels[r["key"]]) for r in after])
    assert after_mae < before_mae / 2


def test_too_few_training_labels_are_refused_with_the_fix(tmp_path):
    project = LabelProject.create(tmp_path / "p", _project(tmp_path / "x").rows.values(), heldout=0.3, seed=0)
    with pytest.raises(DataError, match="label a few more"):
        fit_project_calibration(project)


def test_a_calibrated_judge_folder_serves_with_its_map(tmp_path, tiny_model):
    cal = fit_level_map(ONE_HOT[[0, 1, 2, 3, 4]], [2, 2, 3, 4, 4], [1, 2, 3, 4, 5], (1, 5))
    out = write_calibrated_judge(tmp_path / "cal-run", tiny_model, cal, name="tiny")
    manifest = json.loads((out / "judge.json").read_text())
    assert manifest["calibration"]["levels"] == pytest.approx(cal.levels)
    assert str(tmp_path) not in json.dumps(manifest["calibrated"])
    plain = Judge.load(tiny_model, device="cpu")
    calibrated = Judge.load(out, device="cpu")
    item = {
        "orig_instruction": "2+2?",
        "orig_response": "4",
        "orig_criteria": "correct",
        **{f"orig_score{k}_description": f"d{k}" for k in range(1, 6)},
    }
    [a], [b] = plain.score([item]), calibrated.score([item])
    assert b.probs == pytest.approx(a.probs)
    assert b.expected_score == pytest.approx(float(np.dot(a.probs, cal.levels)))
    assert b.interval is not None
    with pytest.raises(FileExistsError):
        write_calibrated_judge(out, tiny_model, cal)


def test_a_calibrated_judge_exports_with_its_map(tmp_path, tiny_model):
    from raft.export import export_judge

    cal = fit_level_map(ONE_HOT[[0, 1, 2, 3, 4]], [2, 2, 3, 4, 4], [1, 2, 3, 4, 5], (1, 5))
    run = write_calibrated_judge(tmp_path / "cal-run", tiny_model, cal, name="tiny")
    out = export_judge(run, tmp_path / "hub")
    manifest = json.loads((out / "judge.json").read_text())
    assert manifest["calibration"]["levels"] == pytest.approx(cal.levels) and manifest["plain_base"]
    card = (out / "README.md").read_text()
    assert "## Calibration" in card and "1 -> " in card
    assert Judge.load(out, device="cpu").calibration.levels == pytest.approx(cal.levels)


def test_a_judge_calibrated_from_a_run_keeps_its_rubric_and_training_rows_not_its_resume_state(tmp_path, tiny_model):
    """Newcomer walk: a calibrated run lost the rubric its base was trained with (Score and Batch
    proposed Helpfulness), its training rows (Batch gave no in-sample warning) and copied the
    checkpoint's optimizer state into the judge."""
    from raft.insample import TRAINED_ROWS
    from raft.rubrics import Rubric
    from raft.runs import CHECKPOINTS, WRITTEN_LAST

    rubric = Rubric("Is it true?", ("false", "mostly false", "half", "mostly true", "true")).to_dict()
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "dataset.json").write_text(json.dumps({"rubric": rubric}))
    run = tmp_path / "run-1"
    checkpoint = run / CHECKPOINTS / "checkpoint-2"  # a stopped run: its judge is its newest checkpoint
    checkpoint.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "optimizer.pt", "rng_state.pth", WRITTEN_LAST):
        (checkpoint / name).write_bytes(b"x")
    manifest = {"weights": "model", "adapter": None, "scale": [1, 5], "mode": "score_only"}
    (run / "judge.json").write_text(json.dumps(manifest))
    (run / "config.yaml").write_text(f"data: {tmp_path / 'ds'}\n")
    (run / TRAINED_ROWS).write_text('{"hashes": []}')
    cal = fit_level_map(ONE_HOT[[0, 1, 2, 3, 4]], [2, 2, 3, 4, 4], [1, 2, 3, 4, 5], (1, 5))
    out = write_calibrated_judge(tmp_path / "cal-run", run, cal, name="run-1")
    assert json.loads((out / "judge.json").read_text())["rubric"] == rubric
    assert (out / TRAINED_ROWS).read_text() == '{"hashes": []}'
    assert sorted(p.name for p in (out / "model").iterdir()) == ["config.json", "model.safetensors"]
    assert WRITTEN_LAST == "trainer_state.json"  # resume state, left behind with the optimizer
