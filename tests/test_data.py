import json

import pytest

from raft.data import collect_examples, normalize_item, parse_columns, prepare_dataset, read_jsonl
from raft.files import DataError, peek_columns, read_records, write_rows
from raft.prompts import SCORE_CUE


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv", ".parquet"])
def test_every_file_format_gives_the_same_examples(tmp_path, rows, suffix):
    path = write_rows(tmp_path / f"rows{suffix}", rows)
    examples, rejected, read = collect_examples(path)
    assert read == len(rows) and not rejected
    assert [e["score"] for e in examples] == [int(r["orig_score"]) for r in rows]
    assert [e["item"]["orig_response"] for e in examples] == [r["orig_response"] for r in rows]


def test_json_with_one_list_under_a_key(tmp_path, rows):
    path = tmp_path / "wrapped.json"
    path.write_text(json.dumps({"data": rows}))
    assert len(list(read_records(path))) == len(rows)


def test_user_columns_are_mapped_onto_fields(tmp_path, rows):
    renamed = [
        {
            "question": r["orig_instruction"],
            "answer": r["orig_response"],
            "label": r["orig_score"],
            **{k: v for k, v in r.items() if k not in ("orig_instruction", "orig_response", "orig_score")},
        }
        for r in rows
    ]
    path = write_rows(tmp_path / "mine.csv", renamed)
    assert {"question", "answer", "label"} <= set(peek_columns(path))
    examples, rejected, _ = collect_examples(
        path, columns="orig_instruction=question,orig_response=answer,orig_score=label"
    )
    assert not rejected and len(examples) == len(rows)
    assert rows[0]["orig_response"] in examples[0]["prompt"]


def test_a_mapping_to_a_missing_column_names_file_field_and_column(rows_file):
    with pytest.raises(DataError, match=r"rows.jsonl: field 'orig_response': column 'nope' not found"):
        collect_examples(rows_file, columns={"orig_response": "nope"})


def test_unknown_field_in_mapping_is_refused():
    with pytest.raises(DataError, match="field 'colour'"):
        parse_columns("colour=x")


def test_missing_and_empty_files_are_clear(tmp_path):
    with pytest.raises(DataError, match="nothing.jsonl: file not found"):
        list(read_records(tmp_path / "nothing.jsonl"))
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(DataError, match="empty.jsonl: the file holds no rows"):
        list(read_records(tmp_path / "empty.jsonl"))
    (tmp_path / "x.txt").write_text("a")
    with pytest.raises(DataError, match="unsupported file type"):
        list(read_records(tmp_path / "x.txt"))


def test_bad_rows_are_rejected_with_row_field_and_reason(tmp_path, rows):
    bad = [dict(r) for r in rows[:6]]
    bad[1]["orig_score"] = "7"
    bad[2]["orig_score"] = "good"
    bad[3]["orig_response"] = ""
    del bad[4]["orig_criteria"]
    lines = [json.dumps(r) for r in bad]
    lines.insert(5, "{not json")
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    stats = prepare_dataset(path, tmp_path / "out")
    assert stats["rows_read"] == 7 and stats["rows_kept"] == 2 and stats["rows_rejected"] == 5
    rejected = read_jsonl(tmp_path / "out" / "rejected.jsonl")
    got = {(r["row"], r["field"]) for r in rejected}
    assert got == {(2, "orig_score"), (3, "orig_score"), (4, "orig_response"), (5, "orig_criteria"), (6, None)}
    reasons = {r["row"]: r["error"] for r in rejected}
    assert reasons[2] == "" + str(path) + ": row 2: field 'orig_score': score '7' is outside the scale 1..5"
    assert "is not a number" in reasons[3] and "malformed JSON line" in reasons[6]


@pytest.mark.parametrize("value, expected", [("4", 4), (3, 3), (2.0, 2), (" 5 ", 5)])
def test_scores_are_parsed(rows, value, expected):
    assert normalize_item({**rows[0], "orig_score": value}, need_score=True)["orig_score"] == expected


def test_fractional_gold_is_kept_for_evaluation_and_for_training(rows):
    assert normalize_item({**rows[0], "orig_score": "3.5"})["orig_score"] == 3.5
    assert normalize_item({**rows[0], "orig_score": "3.5"}, need_score=True)["orig_score"] == 3.5


def test_feedback_and_score_can_come_from_the_output_column(rows):
    row = {k: v for k, v in rows[0].items() if k not in ("orig_feedback", "orig_score")}
    row["output"] = "Solid work. [RESULT] 4"
    item = normalize_item(row, need_feedback=True, need_score=True)
    assert item["orig_feedback"] == "Solid work." and item["orig_score"] == 4


@pytest.mark.parametrize("mode", ["score_only", "feedback"])
def test_prepare_writes_train_validation_exports_and_stats(tmp_path, rows_file, tiny_judge, mode):
    out = tmp_path / "ds"
    stats = prepare_dataset(
        rows_file, out, mode=mode, tokenizer=tiny_judge.tokenizer, num_samples=15, validation_ratio=0.2, seed=1
    )
    assert stats["rows_kept"] == 15 and stats["train"] == 12 and stats["validation"] == 3
    assert sum(stats["score_histogram"].values()) == 15
    assert {"p50", "p90", "p95", "p99", "max"} <= set(stats["token_lengths"])
    train = read_jsonl(out / "train.jsonl")
    for ex in train:
        assert ex["target"].endswith(f"{SCORE_CUE}{ex['score']}")
        assert ex["target"] == ex["target_prefix"] + SCORE_CUE + str(ex["score"])
        if mode == "feedback":
            assert ex["target"].startswith("Feedback: " + ex["item"]["orig_feedback"])
        else:
            assert ex["target_prefix"] == ""
    share = read_jsonl(out / "ds_sharegpt.jsonl")
    assert share[0]["conversations"][1] == {"from": "gpt", "value": train[0]["target"]}
    info = json.loads((out / "dataset_info.json").read_text())
    assert info["ds"]["file_name"] == "ds_sharegpt.jsonl" and info["ds"]["formatting"] == "sharegpt"
    assert json.loads((out / "stats.json").read_text()) == stats
    again = prepare_dataset(rows_file, tmp_path / "ds2", mode=mode, num_samples=15, validation_ratio=0.2, seed=1)
    assert read_jsonl(tmp_path / "ds2" / "train.jsonl") == train and again["train"] == 12


def test_rows_without_reference_use_the_no_reference_template(tmp_path, rows):
    rows[0]["orig_reference_answer"] = ""
    path = write_rows(tmp_path / "r.jsonl", rows)
    examples, rejected, _ = collect_examples(path)
    templates = {e["row"]: e["template"] for e in examples}
    assert not rejected and templates[1] == "absolute_score_noref" and templates[2] == "absolute_score"


def test_feedback_mode_needs_feedback(tmp_path, rows):
    rows[0].pop("orig_feedback")
    rows[0].pop("output")
    path = write_rows(tmp_path / "r.jsonl", rows)
    _, rejected, _ = collect_examples(path, mode="feedback")
    assert [(r["row"], r["field"], r["reason"]) for r in rejected] == [(1, "orig_feedback", "missing")]


def test_a_csv_saved_by_excel_with_a_byte_order_mark_loads_with_mapped_columns(tmp_path, rows):
    import pandas as pd

    renamed = [
        {**{k: v for k, v in r.items() if k != "orig_instruction"}, "prompt": r["orig_instruction"]} for r in rows
    ]
    path = tmp_path / "excel.csv"
    pd.DataFrame(renamed)[["prompt", *[k for k in renamed[0] if k != "prompt"]]].to_csv(
        path, index=False, encoding="utf-8-sig"
    )
    assert path.read_bytes().startswith(b"\xef\xbb\xbfprompt")
    examples, rejected, _ = collect_examples(path, columns="orig_instruction=prompt")
    assert not rejected and len(examples) == len(rows)
    assert examples[0]["item"]["orig_instruction"] == rows[0]["orig_instruction"]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_latin1_file_gets_one_line_naming_file_offset_and_encoding(tmp_path, rows, suffix):
    path = write_rows(tmp_path / f"rows{suffix}", rows[:3])
    text = path.read_text(encoding="utf-8")
    latin = text.replace(rows[1]["orig_response"], rows[1]["orig_response"] + " café")
    path.write_bytes(latin.encode("latin-1"))
    offset = latin.encode("latin-1").index(b"caf\xe9") + 3
    with pytest.raises(DataError) as err:
        collect_examples(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    assert f"byte offset {offset}" in message and "UTF-8" in message and "0xe9" in message


def test_a_csv_header_that_repeats_a_column_is_refused(tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("orig_response,orig_score,orig_response\na,3,b\n")
    with pytest.raises(DataError, match="'orig_response' more than once"):
        list(read_records(path))
