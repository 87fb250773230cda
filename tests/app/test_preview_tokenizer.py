"""Preview counts tokens with the tokenizer alone: no model weights are loaded for it (the first
Preview used to load the whole default model, tens of seconds, just to count tokens)."""

from app import dataset_tab
from app.studio import DEFAULT_CHOICE


def test_preview_and_write_count_tokens_without_loading_a_judge(studio, monkeypatch):
    def no_weights(*args, **kwargs):
        raise AssertionError("Preview loaded a model's weights to count tokens")

    monkeypatch.setattr(studio, "judge", no_weights)
    out = dataset_tab.preview(
        studio, "synthetic sample", None, "", 20, "", "score_only", "", DEFAULT_CHOICE, 0, 0.25, 0
    )
    built, stats, *_, prompt, target, _ = out
    assert "token_lengths" in stats and prompt.startswith("<|im_start|>user")
    assert dataset_tab.example(studio, built, DEFAULT_CHOICE, 1)[0].startswith("<|im_start|>user")
    assert studio.tokenizer(DEFAULT_CHOICE) is studio.tokenizer(DEFAULT_CHOICE)  # loaded once
