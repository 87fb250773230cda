"""Labels to a judge: agreement on the held-out labels, the dataset of training labels (held-out
rows never in it), RAFT from the base or continued from a run's adapter, and before/after compared."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from raft.align import (
    agreement,
    agreement_markdown,
    compare_judges,
    kappa_interval,
    rescore_heldout,
    write_label_dataset,
)
from raft.batch import score_file
from raft.data import read_dataset_manifest, read_jsonl
from raft.files import DataError, write_rows
from raft.judge import Judge
from raft.labels import LabelProject
from raft.metrics import weighted_kappa
from raft.selection import next_rows
from raft.synthetic import generate_rows
from raft.train import TrainConfig, train


@pytest.fixture(scope="module")
def scored(tmp_path_factory, tiny_judge):
    root = tmp_path_factory.mktemp("align")
    rows = write_rows(root / "rows.jsonl", generate_rows(40, seed=8))
    score_file(tiny_judge, rows, root / "scored.jsonl")
    return root / "scored.jsonl"


@pytest.fixture
def labelled(tmp_path, scored, tiny_model):
    project = LabelProject.create(
        tmp_path / "proj", read_jsonl(scored), judge=str(tiny_model), heldout=0.3, seed=0, source="rows.jsonl"
    )
    for key in next_rows(project, "uncertain", 30):
        project.label(key, project.rows[key]["orig_score"], labeller="sim")
    return project


def test_kappa_interval_matches_metrics_and_brackets_it():
    rng = np.random.default_rng(0)
    gold = rng.integers(1, 6, 80)
    pred = np.clip(gold + rng.normal(0, 0.8, 80), 1, 5)
    k = kappa_interval(gold, pred, (1, 5))
    assert k["value"] == pytest.approx(weighted_kappa(gold, pred, (1, 5)))
    assert k["lo"] < k["value"] < k["hi"]


def test_agreement_is_on_heldout_labels_only(labelled):
    result = agreement(labelled)
    counts = labelled.counts()
    assert result["n"] == counts["heldout_labelled"] == 9 and counts["train_labelled"] == 21
    assert sum(map(sum, result["confusion"])) == 9
    assert set(result["metrics"]) >= {"pearson", "mae"} and "value" in result["kappa"]
    assert [d["gap"] for d in result["disagreements"]] == sorted(
        (d["gap"] for d in result["disagreements"]), reverse=True
    )
    assert "n = 9" in agreement_markdown(result)


def test_heldout_rows_never_in_the_written_dataset(labelled, tmp_path):
    stats = write_label_dataset(labelled, tmp_path / "ds", validation_ratio=0.2)
    written = read_jsonl(tmp_path / "ds" / "train.jsonl") + read_jsonl(tmp_path / "ds" / "validation.jsonl")
    assert len(written) == stats["train"] + stats["validation"] == 21
    assert not {e["row"] for e in written} & labelled.heldout
    heldout_texts = {labelled.item(k)["orig_response"] for k in labelled.heldout}
    assert not {e["item"]["orig_response"] for e in written} & heldout_texts
    labels = labelled.labels()
    assert all(e["score"] == labels[e["row"]] for e in written)
    manifest = read_dataset_manifest(tmp_path / "ds")
    assert manifest["scale"] == [1, 5] and manifest["mode"] == "score_only"
    assert not manifest["prompt"].differs_from(labelled.prompt)
    empty = LabelProject.create(tmp_path / "empty", read_jsonl(labelled.folder / "rows.jsonl"))
    with pytest.raises(DataError, match="no labelled training rows"):
        write_label_dataset(empty, tmp_path / "ds2")


def test_train_on_labels_continue_from_the_adapter_and_compare(labelled, tmp_path, tiny_model):
    write_label_dataset(labelled, tmp_path / "ds")
    common = dict(data=str(tmp_path / "ds"), max_steps=3, batch_size=4, eval_steps=1000, save_steps=1000, device="cpu")
    first = train(TrainConfig(base_model=str(tiny_model), output_dir=str(tmp_path / "run1"), **common))
    # lr 1e-9: the continued run's adapter is the first run's (a fresh one would start at lora_B = 0)
    second = train(TrainConfig(base_model=str(first), output_dir=str(tmp_path / "run2"), learning_rate=1e-9, **common))
    a = load_file(first / "adapter" / "adapter_model.safetensors")
    b = load_file(second / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert any(a[k].abs().sum() > 0 for k in a if "lora_B" in k)
    manifest = json.loads((second / "judge.json").read_text())
    assert manifest["base_model"] == str(tiny_model) and manifest["continued_from"] == str(first)

    after = rescore_heldout(labelled, Judge.load(str(second), device="cpu"), tmp_path / "after.jsonl")
    assert len(after) == 9 and all(r["key"] in labelled.heldout for r in after)
    report = compare_judges(labelled, after)
    assert report["n"] == 9 and report["compare"]["n"] == 9
    assert report["names"] == ["after", "before"]
    pearson = report["compare"]["metrics"]["pearson"]
    assert pearson["p_value"] is not None and pearson["lo"] is not None
    assert {"value", "lo", "hi"} <= set(report["kappa_after"]) and "value" in report["kappa_before"]
