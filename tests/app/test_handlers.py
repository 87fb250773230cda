"""Each tab's handlers called directly, on the tiny model."""

import time
from pathlib import Path

import gradio as gr
import pytest

from app import batch_tab, dataset_tab, finetune_tab, own_files, score_tab
from app.studio import DEFAULT_CHOICE, Settings
from raft.data import read_jsonl
from raft.files import write_rows
from raft.synthetic import generate_rows


def no_progress(*args, **kwargs):
    return None


def test_random_example_and_presets_fill_every_field():
    example = score_tab.random_example(seed=3)
    assert len(example) == 4 + score_tab.MAX_LEVELS and all(example[:9]) and not any(example[9:])
    fields = score_tab.preset_fields("Helpfulness")
    assert len(fields) == 1 + score_tab.MAX_LEVELS and all(fields[:6])


def test_score_one_item_and_compare(studio):
    example = score_tab.random_example(seed=1)
    markdown, figure, details = score_tab.score_item(
        studio, DEFAULT_CHOICE, "score_only", *example, progress=no_progress
    )
    j = details[DEFAULT_CHOICE]
    assert f"{j['expected_score']:.3g}" in markdown and "⚠️" in markdown  # a random model has little mass
    assert list(figure.data[0].y) == pytest.approx(j["probs"]) and list(figure.data[0].x) == [1, 2, 3, 4, 5]
    markdown, figure, details = score_tab.score_item(
        studio, DEFAULT_CHOICE, "score_only", *example, compare=True, model_b=DEFAULT_CHOICE
    )
    assert len([t for t in figure.data if t.type == "bar"]) == 2


def test_score_errors_are_readable(studio):
    example = score_tab.random_example(seed=1)
    example[1] = ""
    with pytest.raises(gr.Error, match="orig_response"):
        score_tab.score_item(studio, DEFAULT_CHOICE, "score_only", *example, progress=no_progress)
    with pytest.raises(gr.Error, match="no judge yet"):
        score_tab.score_item(
            studio, "run: nothing-here", "score_only", *score_tab.random_example(seed=1), progress=no_progress
        )


def test_feedback_mode_scores(studio):
    _, _, details = score_tab.score_item(
        studio, DEFAULT_CHOICE, "feedback", *score_tab.random_example(seed=2), max_new_tokens=8
    )
    assert details[DEFAULT_CHOICE]["feedback"] is not None


def test_dataset_preview_and_write(studio):
    out = dataset_tab.preview(
        studio, "synthetic sample", None, "", 40, "", "score_only", "", DEFAULT_CHOICE, 0, 0.25, 0
    )
    built, stats, scores, lengths, rejected, prompt, target, _ = out
    assert stats["train"] == 30 and stats["validation"] == 10 and "token_lengths" in stats
    assert prompt.startswith("<|im_start|>user") and target.startswith("[RESULT] ")
    assert sum(scores.data[0].y) == 40 and lengths is not None and rejected.empty
    assert isinstance(built, str), "the page holds an id of the preview, not the dataset"
    assert dataset_tab.example(studio, built, "none", 3)[0].startswith("###Task Description:")
    stats, files = dataset_tab.write(studio, built, "ds-one", DEFAULT_CHOICE)
    assert studio.datasets() == ["ds-one"] and any(f.endswith("train.jsonl") for f in files)
    with pytest.raises(gr.Error, match="not a valid name"):
        dataset_tab.write(studio, built, "../escape", DEFAULT_CHOICE)


def test_dataset_from_an_upload_with_mapped_columns(studio, tmp_path):
    rows = [{("answer" if k == "orig_response" else k): v for k, v in r.items()} for r in generate_rows(10)]
    rows[2]["orig_score"] = "nine"
    path = write_rows(tmp_path / "mine.csv", rows)
    assert "answer" in dataset_tab.columns_of(studio, "uploaded file", str(path), "", 0, 0)
    out = dataset_tab.preview(
        studio, "uploaded file", str(path), "", 0, "orig_response=answer", "score_only", "", "none", 0, 0.0, 0
    )
    assert out[1]["rows_kept"] == 9 and out[4].to_dict("records")[0]["field"] == "orig_score"
    with pytest.raises(gr.Error, match="column 'nope' not found"):
        dataset_tab.preview(
            studio, "uploaded file", str(path), "", 0, "orig_response=nope", "score_only", "", "none", 0, 0.0, 0
        )


def test_batch_scores_reports_bad_rows_and_resumes(studio, tmp_path):
    rows = generate_rows(10, seed=4)
    rows[3]["orig_response"] = ""
    path = write_rows(tmp_path / "batch.csv", rows)
    assert "orig_response" in batch_tab.detect_columns(studio, str(path))
    table, summary, scatter, matrix, files = batch_tab.score_batch(
        studio, str(path), "", DEFAULT_CHOICE, "score_only", 4, "orig_score", progress=no_progress
    )
    assert len(table) == 10 and table["error"].notna().sum() == 1
    assert "row 4: field 'orig_response': empty" in table.loc[table["row"] == 4, "error"].item()
    assert "Pearson" in summary and "9 rows" in summary and scatter is not None
    assert matrix.drop(columns="gold").to_numpy().sum() == 9
    assert files[0].endswith(".csv") and len(read_jsonl(files[1])) == 10
    again = batch_tab.score_batch(
        studio, str(path), "", DEFAULT_CHOICE, "score_only", 4, "orig_score", progress=no_progress
    )
    same = [Path(f).name for f in again[4]] == [Path(f).name for f in files]
    assert len(again[0]) == 10 and same  # same output file, resumed (nothing rescored)


def test_batch_refuses_bad_uploads(studio, tmp_path):
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(gr.Error, match="unsupported file type"):
        own_files.check_upload(studio, str(tmp_path / "x.txt"))
    studio.settings.max_upload_mb = 0
    big = write_rows(tmp_path / "big.jsonl", generate_rows(50))
    with pytest.raises(gr.Error, match="the limit is 0 MB"):
        own_files.check_upload(studio, str(big))


def test_finetune_config_views_and_guards(studio):
    values = ["ds", "run-x", "", "raft", 1.0, True, 8, 1e-4, 5, 1.0, 2, 1, 1024, 5, False]
    text, command = finetune_tab.update_views(studio, *values)
    assert "data: ds\n" in text and "output_dir: run-x\n" in text and str(studio.root) not in text + command
    assert command.startswith("python -m raft train --data datasets/ds --output_dir runs/run-x")
    assert "--max_steps 5" in command
    with pytest.raises(gr.Error, match="no dataset named 'ds'"):
        finetune_tab.start(studio, text)
    out = dataset_tab.preview(studio, "synthetic sample", None, "", 40, "", "score_only", "", "none", 0, 0.2, 0)
    dataset_tab.write(studio, out[0], "ds", "none")
    config = finetune_tab.config_from_yaml(studio, text)
    assert config.max_steps == 5 and config.base_model == studio.settings.default_model
    assert config.data == str(studio.root / "datasets" / "ds") and config.output_dir == str(studio.runs_dir / "run-x")
    for bad, message in [
        (text.replace("max_steps: 5", "colour: red"), "unknown config key"),
        (text.replace("output_dir: run-x", "output_dir: /tmp/elsewhere"), "'output_dir' names a run"),
        (text.replace("data: ds", "data: ../../etc"), "'data' names a dataset"),
        (text + "trust_remote_code: true\n", "trust_remote_code"),
        (text.replace("template: null", "template: /etc/hostname"), "'template': a path is not a template"),
        (text.replace("template: null", "template: absolute_feedback"), "differs from the dataset's"),
    ]:
        with pytest.raises(gr.Error, match=message):
            finetune_tab.config_from_yaml(studio, bad)
    assert finetune_tab.config_from_yaml(studio, text.replace("template: null", "template: absolute_score"))


def test_finetune_start_watch_stop(studio):
    out = dataset_tab.preview(studio, "synthetic sample", None, "", 40, "", "score_only", "", "none", 0, 0.2, 0)
    dataset_tab.write(studio, out[0], "ds", "none")
    text, _ = finetune_tab.update_views(
        studio, "ds", "run-y", "", "raft", 1.0, False, 8, 1e-3, 500, 1.0, 2, 1, 2048, 1000, False
    )
    job_id = finetune_tab.start(studio, text)
    with pytest.raises(gr.Error, match="writes run 'run-y'; choose a new run name"):
        finetune_tab.start(studio, text)
    waiting = finetune_tab.start(studio, text.replace("run-y", "run-z"))  # a second Start waits its turn
    assert studio.jobs.get(waiting).status == "queued"
    assert finetune_tab.watch(studio, waiting, False)[0].startswith(f"**queued** · queued behind job {job_id}")
    assert finetune_tab.stop(studio, waiting) == waiting and studio.jobs.get(waiting).status == "stopped"
    deadline = time.time() + 120
    while time.time() < deadline:
        status, loss_plot, eval_plot, log = finetune_tab.watch(studio, job_id, False)
        if "step 0 " not in status and "loss" in status:
            break
        time.sleep(0.5)
    assert status.startswith("**running** · training: ") and "remaining" in status and len(loss_plot.data) >= 1
    assert finetune_tab.stop(studio, job_id) == job_id
    deadline = time.time() + 120
    while not (status := finetune_tab.watch(studio, job_id, True)[0]).startswith("**stopped**"):
        assert time.time() < deadline and status.startswith("**stopping**"), status
        time.sleep(0.5)
    table = finetune_tab.runs_table(studio).set_index("run")
    assert table.loc["run-y", "status"] == "stopped" and table.loc["run-z", "status"] == "stopped"


def test_public_space_turns_training_and_foreign_models_off(monkeypatch, tmp_path):
    monkeypatch.setenv("SPACE_ID", "someone/studio")
    settings = Settings.from_env(str(tmp_path))
    assert not settings.allow_training and not settings.allow_any_model
    assert settings.public
    monkeypatch.setenv("RAFT_ALLOW_TRAINING", "1")
    assert not Settings.from_env(str(tmp_path)).allow_training, "anonymous visitors never train"
    monkeypatch.setenv("RAFT_AUTH", "owner:secret")
    assert Settings.from_env(str(tmp_path)).allow_training


def test_the_form_proposes_a_fresh_run_and_a_used_one_is_refused(studio):
    assert studio.fresh_run_name() == "run-1"
    out = dataset_tab.preview(studio, "synthetic sample", None, "", 40, "", "score_only", "", "none", 0, 0.2, 0)
    dataset_tab.write(studio, out[0], "ds", "none")
    (studio.runs_dir / "run-1").mkdir()
    (studio.runs_dir / "run-1" / "progress.jsonl").write_text("{}\n")
    assert studio.fresh_run_name() == "run-2"
    values = ["ds", "run-1", "", "raft", 1.0, False, 8, 1e-3, 2, 1.0, 2, 1, 2048, 1000, False]
    text, _ = finetune_tab.update_views(studio, *values)
    with pytest.raises(gr.Error, match="already holds a run"):
        finetune_tab.start(studio, text)
    assert "absolute_score" in finetune_tab.dataset_summary(studio, "ds")


def test_a_run_trained_again_is_reloaded_and_its_mode_is_the_default(studio, tiny_model):
    import json

    from raft.data import prepare_dataset
    from raft.train import TrainConfig, train

    rows = write_rows(studio.root / "rows.jsonl", generate_rows(12, seed=2))
    prepare_dataset(rows, studio.workspace().datasets / "fb", mode="feedback")
    config = TrainConfig(
        data=str(studio.workspace().datasets / "fb"),
        output_dir=str(studio.runs_dir / "tract"),
        base_model=str(tiny_model),
        loss="cot_raft",
        max_steps=1,
        lora=False,
        eval_rows=1,
        eval_max_new_tokens=2,
        device="cpu",
    )
    run = train(config)
    assert studio.model_mode("run: tract") == "feedback" and studio.model_mode(DEFAULT_CHOICE) == "score_only"
    first = studio.judge("run: tract")
    assert first.mode == "feedback" and studio.judge("run: tract") is first
    manifest = json.loads((run / "judge.json").read_text())
    time.sleep(0.01)
    (run / "judge.json").write_text(json.dumps(manifest))  # the run was trained again
    assert studio.judge("run: tract") is not first


def test_evaluate_a_batch_result_fit_a_calibration_and_score_with_it(studio, tmp_path):
    from app import evaluate_tab

    rows = generate_rows(40, seed=6, noise=0.5)
    for i, r in enumerate(rows):
        r["category"] = ["math", "writing"][i % 2]
    path = write_rows(tmp_path / "gold.jsonl", rows)
    batch_tab.score_batch(studio, str(path), "", DEFAULT_CHOICE, "score_only", 8, "orig_score", progress=no_progress)
    [(label, result)] = own_files.batch_results(studio.workspace())
    assert label.startswith(f"gold.jsonl · {DEFAULT_CHOICE} · ") and label.endswith(result.rsplit("-")[-1][:-6])
    card, metrics, group, reliability, scatter, comparison, files = evaluate_tab.evaluate(
        studio, result, None, result, None, "", "expected_score", "category", None
    )
    assert "| pearson |" in card and "By **category**" in card and "rows both scored" in card
    assert metrics is not None and group is not None and reliability is not None and comparison is not None
    assert files[0].endswith(".html") and "Plotly.newPlot" in open(files[0]).read()
    with pytest.raises(gr.Error, match="not one of your batch results"):
        evaluate_tab.evaluate(studio, "../../etc/passwd", None, None, None, "", "expected_score", "", None)

    cal_path = evaluate_tab.fit_calibration(studio, result, None, "", 0.9)
    card, *_ = evaluate_tab.evaluate(studio, result, None, None, None, "", "expected_score", "", cal_path)
    assert "rows not used to fit it" in card
    example = score_tab.random_example(seed=3)
    markdown, _, details = score_tab.score_item(
        studio, DEFAULT_CHOICE, "score_only", *example, calibration_file=cal_path, progress=no_progress
    )
    assert "interval (calibrated)" in markdown and details[DEFAULT_CHOICE]["interval"] is not None
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(gr.Error, match="not a calibration file"):
        score_tab.score_item(
            studio, DEFAULT_CHOICE, "score_only", *example, calibration_file=str(tmp_path / "bad.json")
        )


def test_a_calibrated_judge_scores_one_item_with_its_interval(studio, tiny_model):
    """Align's *Calibrate* writes a judge whose own calibration gives an interval; the Score tab
    showed it with the coverage of a calibration file and none was chosen (newcomer walk: TypeError)."""
    import numpy as np

    from raft.calibrated import write_calibrated_judge
    from raft.calibration import fit_level_map

    cal = fit_level_map(np.eye(5), [2, 2, 3, 4, 4], [1, 2, 3, 4, 5], (1, 5))
    write_calibrated_judge(studio.runs_dir / "calibrated-own", tiny_model, cal, name="tiny")
    markdown, _, details = score_tab.score_item(
        studio, "run: calibrated-own", "score_only", *score_tab.random_example(seed=1), progress=no_progress
    )
    low, high = details["run: calibrated-own"]["interval"]
    assert f"90% interval (calibrated): **[{low:.3g}, {high:.3g}]**" in markdown


def test_the_runs_table_gives_no_pearson_on_fewer_rows_than_the_plot_draws():
    """Newcomer walk: Runs showed val_pearson -0.657 on 4 validation rows while the Validation plot
    beside it said correlations need at least 5."""
    from raft.job_status import summarize

    few = summarize([{"step": 2, "eval": {"n": 4, "pearson": -0.6571, "rmse": 1.234}}])
    enough = summarize([{"step": 2, "eval": {"n": 12, "pearson": 0.61234, "rmse": 1.0}}])
    assert finetune_tab.pearson_cell(few) == "not computed, n < 5"
    assert finetune_tab.pearson_cell(enough) == pytest.approx(0.612, abs=1e-9)
