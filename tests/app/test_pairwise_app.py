"""The studio's pairwise handlers without a browser (issue 25): one pair compared in both orders,
a pairs file scored with the file's position bias, a pairwise dataset built from gold scores, the
pair report card, and the Fine-tune config refusing a loss that does not train on pairs."""

import json

import gradio as gr
import pytest

from app import finetune_tab, pair_plots, pairwise, train_config
from app.studio import DEFAULT_CHOICE
from raft.data import read_dataset_manifest, read_jsonl
from raft.files import write_rows
from raft.pairwise import PairJudgment, combine
from raft.synthetic import generate_rows
from raft.train.config import ConfigError, TrainConfig

A = "The capital of France is Paris."
B = "France's capital is Lyon, I think."


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """The tiny model whose tokenizer writes ' A' and ' B' as single tokens (the studio's default here)."""
    from raft.models import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny_pairs_app") / "model", pairwise=True)


def no_progress(*args, **kwargs):
    return None


def _compare(studio, a, b, **kwargs):
    return pairwise.judge_pair(
        studio, DEFAULT_CHOICE, "score_only", "Name the capital of France.", a, b, "", "", progress=no_progress,
        **kwargs,
    )  # fmt: skip


def test_one_pair_in_both_orders_combined_and_swap_gives_one_minus_p(studio):
    markdown, fig, details = _compare(studio, A, B)
    assert details["p_a"] == combine(details["p_ab"], details["p_ba"])
    assert details["position_gap"] == pytest.approx(details["p_ab"] + details["p_ba"] - 1)
    assert f"{details['p_a']:.3g}" in markdown and "Position bias of this pair" in markdown
    _, _, swapped = _compare(studio, B, A)
    assert swapped["p_a"] == 1.0 - details["p_a"]  # exactly: the library's order-free combination
    labels = list(fig.data[0].y)
    assert labels == ["combined (order-free)", "B shown first", "A shown first"]
    assert list(fig.data[0].x) == [details["p_a"], 1 - details["p_ba"], details["p_ab"]]
    assert [a + b for a, b in zip(fig.data[0].x, fig.data[1].x)] == pytest.approx([1, 1, 1])
    assert "n = 2 passes" in fig.layout.title.text
    assert all(t.startswith("A ") and len(t) <= 7 for t in fig.data[0].text)  # rounded to 3 digits


def test_one_order_shows_no_bias_and_no_combined_bar(studio):
    markdown, fig, details = _compare(studio, A, B, both_orders=False)
    assert details["p_ba"] is None and details["p_a"] == details["p_ab"]
    assert list(fig.data[0].y) == ["A shown first"] and "n = 1 passes" in fig.layout.title.text
    assert "Position bias" not in markdown


def test_pair_refusals_are_readable(studio):
    with pytest.raises(gr.Error, match="response B.*limit"):
        _compare(studio, A, "x" * 200_001)
    with pytest.raises(gr.Error, match="orig_response_A"):
        _compare(studio, "   ", B)
    with pytest.raises(gr.Error, match="score-only or feedback"):
        pairwise.judge_pair(studio, DEFAULT_CHOICE, "decode", "q", A, B, "", "", progress=no_progress)


def test_an_empty_feedback_is_said_and_a_score_only_pair_shows_none():
    j = PairJudgment(p_a=0.6, p_ab=0.6, mass_ab=0.9, feedback_ab="")
    assert "Feedback (A shown first): none written" in pairwise.pair_markdown_view("judge", j)
    assert "Feedback" not in pairwise.pair_markdown_view("judge", PairJudgment(p_a=0.6, p_ab=0.6, mass_ab=0.9))


def test_the_pair_view_escapes_the_judge_name_and_its_feedback():
    hostile = '<img src=x onerror="alert(1)"> **bold** [link](http://evil)'
    j = PairJudgment(p_a=0.7, p_ab=0.8, p_ba=0.4, mass_ab=0.9, mass_ba=0.8, feedback_ab=hostile + "\n# head")
    text = pairwise.pair_markdown_view(hostile, j)
    assert "<img" not in text and "**bold**" not in text and "](http" not in text and "\n# head" not in text
    assert "&lt;img" in text and "A shown first" in text
    assert "Position bias of this pair: **+0.2**" in text  # 0.8 - (1 - 0.4)


def _pairs_file(tmp_path, n=6):
    rows = [
        {"prompt": f"Question {i}?", "chosen": f"A good answer {i}.", "rejected": f"bad {i}", "id": i} for i in range(n)
    ]
    return write_rows(tmp_path / "prefs.jsonl", rows)


def test_a_pairs_file_is_scored_with_its_position_bias_and_resumed(studio, tmp_path):
    path = _pairs_file(tmp_path)
    summary, table, files = pairwise.score_pairs_batch(studio, str(path), DEFAULT_CHOICE, "score_only", True, 4,
                                                       progress=no_progress)  # fmt: skip
    assert len(table) == 6 and table["p_a"].notna().all() and (table["orig_preference"] == 1.0).all()
    [out] = list(pairwise.pairs_folder(studio.workspace()).glob("*.jsonl"))
    rows = read_jsonl(out)
    bias = sum(r["p_ab"] + r["p_ba"] - 1 for r in rows) / len(rows)
    assert f"**{bias:+.3g}**" in summary and "n = 6 pairs" in summary
    assert sorted(f.rsplit("/", 1)[-1] for f in files) == ["prefs-default-model-scored.csv",
                                                           "prefs-default-model-scored.jsonl"]  # fmt: skip
    assert str(tmp_path) not in summary
    again, _, _ = pairwise.score_pairs_batch(studio, str(path), DEFAULT_CHOICE, "score_only", True, 4,
                                             progress=no_progress)  # fmt: skip
    assert "6 reused" in again
    assert [name for _, name in pairwise.pair_results(studio.workspace())] == [out.name]


def test_a_file_without_pairs_is_refused_naming_no_server_path(studio, tmp_path):
    path = write_rows(tmp_path / "absolute.jsonl", generate_rows(3, seed=1))
    with pytest.raises(gr.Error) as err:
        pairwise.score_pairs_batch(studio, str(path), DEFAULT_CHOICE, "score_only", progress=no_progress)
    assert "does not hold pairs" in str(err.value) and str(tmp_path) not in str(err.value)


def _absolute_file(tmp_path):
    """Two questions with three answers each: golds (5, 3, 3) and (1, 2, 4)."""
    rows = generate_rows(6, seed=2)
    for i, (row, score) in enumerate(zip(rows, (5, 3, 3, 1, 2, 4))):
        row.update(idx=i // 3, orig_instruction=f"Question {i // 3}", orig_score=score, orig_response=f"answer {i}")
    return write_rows(tmp_path / "absolute.jsonl", rows)


@pytest.mark.parametrize("ties, pairs, examples", [("drop", 5, 10), ("half", 6, 12)])
def test_pairs_from_scores_make_a_pairwise_dataset(studio, tmp_path, ties, pairs, examples):
    path = _absolute_file(tmp_path)
    note, preview, files = pairwise.build_pairs_dataset(
        studio, str(path), pairwise.FROM_SCORES, ties, "", "score_only", 0.0, 0, f"mt-{ties}"
    )
    assert f"{pairs} pairs, 1 with equal gold ({int(ties == 'half')} kept at 0.5)" in note
    assert f"{examples} training" in note and "2 questions" in note
    assert len(preview) == pairs and set(preview["P(A) target"]) <= {0.0, 0.5, 1.0}
    folder = studio.workspace().datasets / f"mt-{ties}"
    assert read_dataset_manifest(folder)["task"] == "pairwise"
    assert sum(1 for _ in open(folder / "train.jsonl")) == examples
    assert any(f.endswith("train.jsonl") for f in files)
    with pytest.raises(gr.Error, match="exists already"):
        pairwise.build_pairs_dataset(studio, str(path), pairwise.FROM_SCORES, ties, "", "score_only", 0.0, 0,
                                     f"mt-{ties}")  # fmt: skip


def test_a_pairwise_dataset_refuses_paths_and_unknown_columns(studio, tmp_path):
    path = _absolute_file(tmp_path)
    with pytest.raises(gr.Error):
        pairwise.build_pairs_dataset(studio, str(path), pairwise.FROM_SCORES, "drop", "", "score_only", 0, 0, "../x")
    with pytest.raises(gr.Error, match="column 'nope' not found"):
        pairwise.build_pairs_dataset(studio, str(path), pairwise.FROM_SCORES, "drop", "nope", "score_only", 0, 0, "y")
    assert not (studio.workspace().datasets / "y").exists()


def test_a_pairs_file_makes_a_dataset_directly(studio, tmp_path):
    note, preview, _ = pairwise.build_pairs_dataset(
        studio, str(_pairs_file(tmp_path)), pairwise.PAIRS_FILE, "drop", "", "score_only", 0.0, 0, "prefs"
    )
    assert "12 training" in note and list(preview["P(A) target"]) == [1.0] * 6


def test_the_finetune_config_refuses_a_loss_that_does_not_train_on_pairs(studio, tmp_path):
    pairwise.build_pairs_dataset(studio, str(_absolute_file(tmp_path)), pairwise.FROM_SCORES, "drop", "",
                                 "score_only", 0.0, 0, "pairs")  # fmt: skip
    workspace = studio.workspace()
    with pytest.raises(ConfigError, match="emd does not train on pairs.*raft"):
        train_config.resolve(studio, TrainConfig(data="pairs", output_dir="r", loss="emd"), workspace)
    assert train_config.resolve(studio, TrainConfig(data="pairs", output_dir="r", loss="ce"), workspace).loss == "ce"
    named = TrainConfig(data="pairs", output_dir="r", loss="raft", template="relative_score")
    assert train_config.resolve(studio, named, workspace).template is None  # the dataset's own, by name
    with pytest.raises(gr.Error, match="does not train on pairs"):  # the Start button: refused before a job
        finetune_tab.start(studio, TrainConfig(data="pairs", output_dir="r", loss="emd").to_yaml())
    assert studio.jobs.list() == []
    assert "**pairwise** judge" in finetune_tab.dataset_summary(studio, "pairs")


def test_the_pair_report_card_of_a_scored_file(studio, tmp_path):
    path = _pairs_file(tmp_path)
    pairwise.score_pairs_batch(studio, str(path), DEFAULT_CHOICE, "score_only", progress=no_progress)
    [(_, name)] = pairwise.pair_results(studio.workspace())
    card, fig, files = pairwise.pair_card(studio, name, None, 200)
    assert "6 pairs, 6 with a preferred response" in card and "| accuracy |" in card
    assert card.startswith("**prefs.jsonl · default model · ")  # the result as Batch named it, not its hash
    assert sorted(f.rsplit("/", 1)[-1] for f in files) == [
        "prefs-default-model.pair-report.json",
        "prefs-default-model.pair-report.md",
    ]
    report = json.loads(open(next(f for f in files if f.endswith(".json"))).read())
    assert report["n"] == 6 and report["position_consistency"]["value"] is not None
    assert sum(fig.data[0].marker.size) > 0 and "n = 6 pairs" in fig.layout.title.text
    with pytest.raises(gr.Error, match="not one of your scored pairs"):
        pairwise.pair_card(studio, "../../etc/passwd", None)
    with pytest.raises(gr.Error, match="holds no P\\(A\\)"):
        pairwise.pair_card(studio, None, str(path))


def test_reliability_points_carry_their_n():
    bins = [{"lo": 0.0, "hi": 0.1, "count": 0, "mean_p_a": None, "mean_preference": None},
            {"lo": 0.6, "hi": 0.7, "count": 3, "mean_p_a": 0.65, "mean_preference": 2 / 3}]  # fmt: skip
    fig = pair_plots.reliability(bins)
    assert list(fig.data[0].text) == ["n = 3"] and list(fig.data[0].x) == [0.65]


def test_feedback_mode_writes_one_feedback_per_order_and_shows_it_as_text(studio):
    markdown, _, details = pairwise.judge_pair(
        studio, DEFAULT_CHOICE, "feedback", "Name the capital of France.", A, B, "", "", True, 16,
        progress=no_progress,
    )  # fmt: skip
    assert details["feedback_ab"] is not None and details["feedback_ba"] is not None
    assert details["p_a"] == combine(details["p_ab"], details["p_ba"])
    assert "Feedback (A shown first)" in markdown and "Feedback (B shown first)" in markdown
    assert "<" not in markdown.replace("<br>", "")  # the model's words never become markup


def test_a_whole_file_criterion_is_a_setting_of_its_own_result(studio, tmp_path):
    path = _pairs_file(tmp_path, 2)
    pairwise.score_pairs_batch(studio, str(path), DEFAULT_CHOICE, "score_only", progress=no_progress)
    summary, _, _ = pairwise.score_pairs_batch(
        studio, str(path), DEFAULT_CHOICE, "score_only", criterion="Which answer is more concise?",
        progress=no_progress,
    )  # fmt: skip
    assert "0 reused" in summary and len(pairwise.pair_results(studio.workspace())) == 2
    with pytest.raises(gr.Error, match="criterion.*limit"):
        pairwise.score_pairs_batch(studio, str(path), DEFAULT_CHOICE, "score_only", criterion="x" * 200_001,
                                   progress=no_progress)  # fmt: skip


def test_a_click_on_a_shared_studio_stops_after_its_time_and_the_next_resumes(studio, tmp_path, monkeypatch):
    path = _pairs_file(tmp_path, 40)
    monkeypatch.setattr(pairwise, "time_budget", lambda studio: 0.0)  # a public studio's limit, already spent
    first, table, _ = pairwise.score_pairs_batch(studio, str(path), DEFAULT_CHOICE, "score_only", progress=no_progress)
    assert len(table) == 32 and "Stopped after 0 s" in first  # one chunk of 32 is written, then it stops
    assert "n = 32 pairs" in first
    monkeypatch.setattr(pairwise, "time_budget", lambda studio: None)
    second, table, _ = pairwise.score_pairs_batch(studio, str(path), DEFAULT_CHOICE, "score_only", progress=no_progress)
    assert len(table) == 40 and list(table["row"]) == sorted(table["row"]) and "32 reused" in second
    assert "Stopped" not in second and "n = 40 pairs" in second


def test_columns_not_recognised_by_name_are_mapped_and_the_mapping_is_said(studio, tmp_path):
    rows = [{"q": f"Question {i}?", "first": "yes", "second": "no", "vote": "B"} for i in range(3)]
    path = write_rows(tmp_path / "own.csv", rows)
    with pytest.raises(gr.Error, match="does not hold pairs.*map them"):
        pairwise.score_pairs_batch(studio, str(path), DEFAULT_CHOICE, "score_only", progress=no_progress)
    mapping = "orig_instruction=q, orig_response_A=first, orig_response_B=second, orig_preference=vote"
    summary, table, _ = pairwise.score_pairs_batch(
        studio, str(path), DEFAULT_CHOICE, "score_only", columns=mapping, progress=no_progress
    )
    assert "orig_response_A ← `first`" in summary and (table["orig_preference"] == 0.0).all()
    with pytest.raises(gr.Error, match="unknown field"):
        pairwise.score_pairs_batch(studio, str(path), DEFAULT_CHOICE, "score_only", columns="orig_score=q")
    with pytest.raises(gr.Error, match="'nothere' not found"):
        pairwise.score_pairs_batch(studio, str(path), DEFAULT_CHOICE, "score_only", columns="orig_response_A=nothere")
    note, preview, _ = pairwise.build_pairs_dataset(
        studio, str(path), pairwise.PAIRS_FILE, "drop", "", "score_only", 0.0, 0, "own", mapping
    )
    assert "6 training" in note and list(preview["P(A) target"]) == [0.0] * 3


def test_names_the_server_writes_hold_nothing_of_a_path_or_markup():
    assert pairwise._stem("run: ../../etc/passwd <img src=x>") == "etc-passwd-img-src-x"
    assert pairwise._stem("...") == "pairs"


def test_a_judge_trained_on_pairs_made_in_the_studio_compares_there_and_is_refused_one_answer(studio, tmp_path):
    from app import score_tab
    from raft.train import train

    pairwise.build_pairs_dataset(studio, str(_absolute_file(tmp_path)), pairwise.FROM_SCORES, "half", "",
                                 "score_only", 0.0, 0, "mt")  # fmt: skip
    named = TrainConfig(data="mt", output_dir="pair-run", loss="raft", max_steps=2, lora=False, device="cpu")
    train(train_config.resolve(studio, named, studio.workspace()))
    _, _, details = pairwise.judge_pair(studio, "run: pair-run", "score_only", "Name the capital of France.", A, B,
                                        "", "", progress=no_progress)  # fmt: skip
    assert studio.judge("run: pair-run").pairwise and details["p_a"] == combine(details["p_ab"], details["p_ba"])
    with pytest.raises(gr.Error, match="run: pair-run compares two answers: give it a pair in 'Compare two answers"):
        score_tab.score_item(studio, "run: pair-run", "score_only", *score_tab.random_example(seed=1),
                             progress=no_progress)  # fmt: skip


def test_a_pairs_batch_is_charged_as_written_and_stops_at_the_quota_keeping_what_it_scored(tmp_path, tiny_model):
    """The scored pairs go through the workspace writer: past a 1 MB quota the click stops with a
    reason and the pairs already written stay (the workspace never holds more than its quota)."""
    from types import SimpleNamespace

    from app.studio import Settings, Studio

    public = Studio(Settings(data_root=tmp_path / "root", default_model=str(tiny_model), public=True, workspace_mb=1))
    ada = SimpleNamespace(username=None, session_hash="ada", request=None)
    root = public.workspace(ada).root
    (root / "batch").mkdir(parents=True, exist_ok=True)
    (root / "batch" / "filler").write_bytes(b"x" * (2**20 - 500))  # no room for the scored pairs
    path = _pairs_file(tmp_path)
    with pytest.raises(gr.Error, match="Scoring stopped: .*full.*kept"):
        pairwise.score_pairs_batch(public, str(path), DEFAULT_CHOICE, "score_only", True, 1, request=ada,
                                   progress=no_progress)  # fmt: skip
    held = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert held <= 2**20
