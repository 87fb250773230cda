"""What leaves the machine names things, never server folders: an exported judge's card, judge.json
and configs hold no data root, workspace or run folder; `adapter_config.json` names the base model
by its hub id (plain PEFT loading works elsewhere); the rubric the judge was trained with travels in
judge.json and the card (issue 21 item 8, issue 22 item 12)."""

import json

import pytest

from raft import export as export_module
from raft.data import prepare_dataset
from raft.export import DEFAULT_HUB_ID, export_judge
from raft.files import write_rows
from raft.rubrics import presets
from raft.synthetic import generate_rows
from raft.train import TrainConfig, train


@pytest.fixture(scope="module")
def rubric_run(tmp_path_factory, tiny_model):
    root = tmp_path_factory.mktemp("server-data-root")
    rows = [{k: v for k, v in r.items() if not k.startswith("orig_score") and k != "orig_criteria"} | {
        "orig_score": r["orig_score"]} for r in generate_rows(16, seed=7)]  # fmt: skip
    prepare_dataset(
        write_rows(root / "rows.jsonl", rows), root / "datasets" / "mine", validation_ratio=0.25,
        rubric=presets()["Helpfulness"],
    )  # fmt: skip
    config = TrainConfig(
        data=str(root / "datasets" / "mine"), output_dir=str(root / "runs" / "run-1"), base_model=str(tiny_model),
        max_steps=1, eval_steps=1, eval_rows=2, batch_size=4, lora_r=4, save_steps=1000, device="cpu",
    )  # fmt: skip
    return train(config), root


def test_nothing_exported_names_a_server_folder_and_the_base_is_the_hub_id(
    rubric_run, tiny_model, tmp_path, monkeypatch
):
    run, root = rubric_run
    monkeypatch.setattr(export_module, "default_model_dir", lambda: tiny_model)  # a run on the default model
    out = export_judge(run, tmp_path / "hub" / "judge")
    texts = {p.name: p.read_text(encoding="utf-8") for p in out.iterdir() if p.suffix in (".json", ".md", ".yaml")}
    assert {"README.md", "judge.json", "adapter_config.json"} <= set(texts)
    for name, text in texts.items():
        for server in (str(root), str(tiny_model), str(tmp_path)):
            assert server not in text, f"{name} names the server folder {server}"
    assert json.loads(texts["adapter_config.json"])["base_model_name_or_path"] == DEFAULT_HUB_ID
    card = texts["README.md"]
    assert "data: mine" in card and "output_dir: run-1" in card and f"base_model: {DEFAULT_HUB_ID}" in card


def test_the_rubric_the_judge_was_trained_with_travels_in_judge_json_and_the_card(rubric_run, tmp_path):
    run, _ = rubric_run
    out = export_judge(run, tmp_path / "hub")
    helpfulness = presets()["Helpfulness"]
    manifest = json.loads((out / "judge.json").read_text())
    assert manifest["rubric"]["criteria"] == helpfulness.criteria
    assert manifest["rubric"]["descriptions"] == list(helpfulness.descriptions)
    card = (out / "README.md").read_text()
    assert "## Rubric" in card and helpfulness.criteria in card
    assert all(d in card for d in helpfulness.descriptions)
    assert manifest["prompt"]["with_reference"]["text"].rstrip() in card  # and the template
