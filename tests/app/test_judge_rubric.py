"""A fine-tuned judge chosen in Score or Batch proposes the rubric it was trained with (recorded
in its judge.json, else its dataset's dataset.json), not the first preset; other judges leave the
rubric shown as it is."""

import json

import gradio as gr
import yaml

from app import batch_tab, mapping, score_tab
from app.studio import DEFAULT_CHOICE
from raft.data import prepare_dataset
from raft.files import write_rows
from raft.rubrics import Rubric, presets
from raft.synthetic import generate_rows

OWN = Rubric("Is the recipe safe to cook?", ("raw", "risky", "fair", "safe", "exemplary"))


def _run(studio, name, manifest, config=None):
    run = studio.runs_dir / name
    (run / "model").mkdir(parents=True)
    (run / "judge.json").write_text(json.dumps({"weights": "model", "scale": [1, 5], "mode": "score_only", **manifest}))
    if config:
        (run / "config.yaml").write_text(yaml.safe_dump(config))
    return run


def test_a_run_proposes_the_rubric_it_was_trained_with(studio, tmp_path):
    rows = write_rows(tmp_path / "rows.jsonl", [{k: r[k] for k in ("orig_instruction", "orig_response", "orig_score")}
                                                 for r in generate_rows(20, seed=1)])  # fmt: skip
    prepare_dataset(rows, tmp_path / "ds", validation_ratio=0.1, rubric=OWN)
    _run(studio, "own", {}, {"data": str(tmp_path / "ds")})  # the rubric travels with the run's dataset
    _run(studio, "conc", {"rubric": presets()["Conciseness"].to_dict()})  # ...or in its judge.json

    preset, criteria, *boxes = score_tab.trained_rubric(studio, "run: own")
    assert (preset, criteria, boxes[:5]) == (score_tab.CUSTOM, OWN.criteria, list(OWN.descriptions))
    assert score_tab.trained_rubric(studio, "run: conc")[0] == "Conciseness"

    choice, criterion, *levels = batch_tab.trained_rubric(studio, "run: own", "Helpfulness")
    assert choice.value == mapping.TYPED and criterion.value == OWN.criteria
    assert [box.value for box in levels] == list(OWN.descriptions)
    assert batch_tab.trained_rubric(studio, "run: conc", "Helpfulness")[0].value == "Conciseness"


def test_other_judges_and_files_with_their_own_rubric_change_nothing(studio):
    _run(studio, "conc", {"rubric": presets()["Conciseness"].to_dict()})
    for choice in (DEFAULT_CHOICE, "run: missing", "run: ../../etc", None):
        assert all(isinstance(u, type(gr.skip())) for u in score_tab.trained_rubric(studio, choice))
        assert all(isinstance(u, type(gr.skip())) for u in batch_tab.trained_rubric(studio, choice, "Helpfulness"))
    kept = batch_tab.trained_rubric(studio, "run: conc", mapping.OWN_RUBRIC)  # the rows carry their own
    assert all(isinstance(u, type(gr.skip())) for u in kept)


def test_a_rubric_the_visitor_chose_or_typed_is_kept(studio):
    _run(studio, "conc", {"rubric": presets()["Conciseness"].to_dict()})
    kept = [*score_tab.trained_rubric(studio, "run: conc", True)]
    kept += batch_tab.trained_rubric(studio, "run: conc", "Harmlessness", True)
    assert all(isinstance(u, type(gr.skip())) for u in kept)
