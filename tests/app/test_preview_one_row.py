"""Preview of a file with exactly one usable row (issue 22 item 13): the example picker cannot
span 0..0, and Preview used to fail on it with a slider error; now it shows the row."""

from app import dataset_tab
from raft.files import write_rows
from raft.synthetic import generate_rows


def test_preview_of_a_file_with_one_usable_row_shows_it(studio, tmp_path):
    rows = generate_rows(3, seed=2)
    rows[1]["orig_response"] = ""  # rejected
    rows[2]["orig_score"] = "nine"  # rejected
    path = write_rows(tmp_path / "one.jsonl", rows)
    built, stats, *_, prompt, target, slider = dataset_tab.preview(
        studio, "uploaded file", str(path), "", 0, "", "score_only", "", "none", 0, 0.0, 0
    )
    assert stats["rows_kept"] == 1 and prompt.startswith("###Task Description:") and target.startswith("[RESULT]")
    assert slider.maximum == 1 and slider.value == 0 and slider.interactive is False
    assert dataset_tab.example(studio, built, "none", 1)[0] == prompt  # the one row either way
