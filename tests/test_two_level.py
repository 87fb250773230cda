"""Two-level scales (pass/fail as 0/1, or 1/2) end to end where the tokenizer gives one token per
score: prepare, train, score, report card, eval and estimate."""

from __future__ import annotations

import json

import pytest

from raft.cli import main
from raft.data import parse_score, read_jsonl
from raft.files import write_rows
from raft.synthetic import generate_rows
from raft.train import TrainConfig, train


def _rows(scale, words):
    lo, hi = scale
    out = []
    for i, r in enumerate(generate_rows(24, seed=3)):
        good = int(r["orig_score"]) >= 3
        out.append(
            {
                "orig_instruction": r["orig_instruction"],
                "orig_response": r["orig_response"],
                "orig_criteria": "Is the answer acceptable?",
                f"orig_score{lo}_description": "Fail: wrong or unhelpful.",
                f"orig_score{hi}_description": "Pass: correct and helpful.",
                # the last 8 rows carry no label: what `estimate` reads as judged-only rows
                "label": (("pass" if good else "fail") if words else (hi if good else lo)) if i < 16 else None,
                "orig_score": ("pass" if good else "fail") if words else (hi if good else lo),
            }
        )
    return out


@pytest.mark.parametrize(("scale", "words"), [((0, 1), True), ((1, 2), False)])
def test_two_level_scale_prepare_train_score_report(tmp_path, tiny_model, capsys, scale, words):
    source = write_rows(tmp_path / "rows.jsonl", _rows(scale, words))
    spec = f"{scale[0]},{scale[1]}"
    args = ["prepare", "--source", str(source), "--mode", "score_only", "--scale", spec, "--out", str(tmp_path / "ds")]
    assert main([*args, "--tokenizer", str(tiny_model)]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["rows_kept"] == 24
    manifest = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert manifest["scale"] == list(scale)
    run = train(
        TrainConfig(
            data=str(tmp_path / "ds"),
            output_dir=str(tmp_path / "run"),
            base_model=str(tiny_model),
            max_steps=2,
            eval_steps=1000,
            save_steps=1000,
            batch_size=4,
            lora=False,
            device="cpu",
        )
    )
    out = tmp_path / "scored.jsonl"
    assert main(["score", "--input", str(source), "--out", str(out), "--model", str(run), "--device", "cpu"]) == 0
    scored = read_jsonl(out)
    assert len(scored) == 24 and all(len(r["probs"]) == 2 and r["mode_score"] in scale for r in scored)
    capsys.readouterr()

    assert main(["report", str(out), "--out", str(tmp_path / "card.json")]) == 0
    card = json.loads((tmp_path / "card.json").read_text())
    assert card["n"] == 24 and card["scale"] == list(scale) and card["levels"]["scale"] == list(scale)
    binary = card["levels"]["binary"]
    assert binary["positive"] == scale[1] and binary["n_pos"] + binary["n_neg"] == 24
    assert "balanced accuracy (n = 24)" in capsys.readouterr().out

    assert main(["eval", "--input", str(out)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 24 and result["scale"] == list(scale) and "tpr" in result

    assert main(["estimate", str(out), "--gold", "label"]) == 0
    estimate = json.loads(capsys.readouterr().out)
    assert (estimate["n_labelled"], estimate["n_unlabelled"]) == (16, 8)
    passed = sum(1 for r in _rows(scale, words)[:16] if r["label"] in ("pass", scale[1]))
    assert estimate["labels_only"]["estimate"] == pytest.approx(scale[0] + passed / 16)  # pass rate on 0/1


def test_pass_fail_words_only_on_two_levels():
    assert parse_score("Pass", (0, 1)) == 1 and parse_score("fail", (1, 2)) == 1 and parse_score(True, (0, 1)) == 1
    with pytest.raises(ValueError, match="not a number"):
        parse_score("pass", (1, 5))
