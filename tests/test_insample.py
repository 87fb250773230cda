"""Honest evaluation (issue 21, item 6): a run records which rows it trained on (content hashes in
its folder), and Batch, Evaluate, the report card and the exported model card say how many scored
rows were training rows and report the others apart. On main a judge trained on 18 of 24 rows and
evaluated on all 24 got a card with no word of it."""

import json
import shutil

import numpy as np
import pytest

from raft.cli import main
from raft.data import prepare_dataset, read_jsonl
from raft.export import export_judge
from raft.files import write_rows
from raft.insample import TRAINED_ROWS, row_hash, trained_hashes, training_mask
from raft.report import build_report, to_markdown
from raft.stats import bootstrap
from raft.synthetic import generate_rows
from raft.train import TrainConfig, train


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_model):
    root = tmp_path_factory.mktemp("insample")
    rows = write_rows(root / "rows.jsonl", generate_rows(24, seed=11, noise=0.5))
    prepare_dataset(rows, root / "ds", validation_ratio=0.25)
    config = TrainConfig(
        data=str(root / "ds"),
        output_dir=str(root / "run"),
        base_model=str(tiny_model),
        max_steps=1,
        batch_size=4,
        lora=True,
        lora_r=4,
        save_steps=1000,
        eval_steps=1000,
        device="cpu",
    )
    return train(config), root


def test_row_hash_reads_the_judged_text_only():
    a = {"orig_instruction": "Q", "orig_response": "A", "orig_reference_answer": "", "orig_score": 3}
    assert row_hash(a) == row_hash({**a, "orig_score": 5, "question": "x", "orig_response": "  A\n"})
    assert row_hash(a) != row_hash({**a, "orig_response": "B"})
    assert row_hash({"orig_instruction": "", "orig_response": ""}) is None


def test_a_run_records_its_training_rows_and_not_its_validation_rows(run):
    run_dir, root = run
    hashes = trained_hashes(run_dir)
    train_items = [e["item"] for e in read_jsonl(root / "ds" / "train.jsonl")]
    val_items = [e["item"] for e in read_jsonl(root / "ds" / "validation.jsonl")]
    assert hashes == {row_hash(i) for i in train_items} and len(hashes) == 18
    assert not hashes & {row_hash(i) for i in val_items}
    recorded = (run_dir / TRAINED_ROWS).read_text()
    assert not any(i["orig_response"] in recorded for i in train_items)  # hashes, never the text
    assert trained_hashes(root) is None  # a folder that recorded none


def _scored(root):
    """All 24 rows 'scored': the gold plus noise, so that the metrics are defined."""
    rng = np.random.default_rng(0)
    rows = read_jsonl(root / "rows.jsonl")
    return [
        {**r, "row": i + 1, "expected_score": float(r["orig_score"]) + rng.normal(0, 0.5)} for i, r in enumerate(rows)
    ]


def test_the_report_card_counts_training_rows_and_reports_the_rest_apart(run):
    run_dir, root = run
    rows = _scored(root)
    report = build_report(rows, trained=trained_hashes(run_dir), trained_name="run-1")
    section = report["in_sample"]
    mask = training_mask(rows, trained_hashes(run_dir))
    assert section["n_training"] == 18 == sum(mask) and section["n_rest"] == 6
    rest = [r for r, m in zip(rows, mask) if not m]
    expected = bootstrap([r["orig_score"] for r in rest], [r["expected_score"] for r in rest])
    assert section["metrics_rest"]["mae"]["value"] == pytest.approx(expected["mae"]["value"])
    card = to_markdown(report)
    assert "**18 of the 24 rows with gold were run-1's training rows**" in card
    assert "On the other 6 rows (never trained on):" in card
    assert "in_sample" not in build_report(rows)  # no run named, nothing claimed


def test_the_cli_report_and_the_exported_card_say_it(run, tmp_path, capsys):
    run_dir, root = run
    scored = write_rows(tmp_path / "scored.jsonl", _scored(root))
    card_json = tmp_path / "card.json"
    assert main(["report", str(scored), "--trained-on", str(run_dir), "--out", str(card_json)]) == 0
    assert "18 of the 24 rows with gold were run's training rows" in capsys.readouterr().out
    out = export_judge(run_dir, tmp_path / "hub", report=card_json)
    readme = (out / "README.md").read_text()
    assert "## Training rows" in readme and "Trained on 18 distinct rows" in readme
    assert "18 of the 24 rows with gold were run's training rows" in readme
    assert trained_hashes(out) == trained_hashes(run_dir)
    assert str(tmp_path) not in (out / TRAINED_ROWS).read_text()


def test_a_continued_run_counts_the_rows_of_the_run_it_continued(run, tmp_path, tiny_model):
    run_dir, root = run
    rows = write_rows(tmp_path / "more.jsonl", generate_rows(8, seed=99))
    prepare_dataset(rows, tmp_path / "ds2")
    config = TrainConfig(
        data=str(tmp_path / "ds2"),
        output_dir=str(tmp_path / "run2"),
        base_model=str(run_dir),
        max_steps=1,
        batch_size=4,
        lora=True,
        lora_r=4,
        save_steps=1000,
        eval_steps=1000,
        device="cpu",
    )
    second = train(config)
    new = {row_hash(e["item"]) for e in read_jsonl(tmp_path / "ds2" / "train.jsonl")}
    assert trained_hashes(second) == trained_hashes(run_dir) | new


def test_batch_and_evaluate_in_the_studio_say_how_many_rows_were_training_rows(run, tmp_path, tiny_model):
    from app import batch_tab, evaluate_tab, honest, own_files
    from app.studio import Settings, Studio

    run_dir, root = run
    studio = Studio(Settings(data_root=tmp_path / "root", default_model=str(tiny_model)))
    shutil.copytree(run_dir, studio.runs_dir / "run-1")
    source = write_rows(tmp_path / "all.jsonl", read_jsonl(root / "rows.jsonl"))
    _, summary, *_ = batch_tab.score_batch(
        studio, str(source), "", "run: run-1", "score_only", 8, "orig_score", progress=lambda *a, **k: None
    )
    assert "**18 of these 24 rows were run-1's training rows**" in summary
    assert "On the other 6 rows with gold (never trained on)" in summary
    [(_, result)] = own_files.batch_results(studio.workspace())
    card, *_ = evaluate_tab.evaluate(studio, result, None, None, None, "", "expected_score", "", None)
    assert "**18 of the 24 rows with gold were run-1's training rows**" in card
    assert "On the other 6 rows (never trained on):" in card
    assert honest.judge_training_rows(studio, "default model") == (None, "default model")
    none = honest.batch_note(
        read_jsonl(source), trained_hashes(run_dir) - {row_hash(r) for r in read_jsonl(source)}, "r", "orig_score"
    )
    assert none == "\n\nNone of these 24 rows were r's training rows."
    assert json.loads((studio.runs_dir / "run-1" / TRAINED_ROWS).read_text())["fields"][0] == "orig_instruction"
