"""The Fine-tune tab's memory note (issue 26): the estimate for the form's settings on the
dataset's longest batch, and a warning when it exceeds the free memory."""

from app import dataset_tab, finetune_tab
from raft.train import plan


def _values(**kw):
    form = {"dataset": "ds", "run_name": "run-m", "base_model": "", "loss": "raft", "lam": 1.0, "lora": True}
    form |= {"lora_r": 8, "learning_rate": 1e-4, "max_steps": 5, "epochs": 1.0, "batch_size": 4, "grad_accum": 1}
    form |= {"max_length": 2048, "eval_steps": 5, "gradient_checkpointing": False}
    form.update(kw)
    return list(form.values())


def test_the_note_estimates_the_peak_and_warns_when_memory_is_short(studio, monkeypatch):
    assert "Memory" not in finetune_tab.memory_note(studio, *_values())  # no dataset yet: the summary alone
    out = dataset_tab.preview(studio, "synthetic sample", None, "", 40, "", "score_only", "", "none", 0, 0.2, 0)
    dataset_tab.write(studio, out[0], "ds", "none")
    note = finetune_tab.memory_note(studio, *_values())
    assert note.startswith("Trains in mode **score_only**")
    assert "Memory: estimated peak memory" in note and "on the longest batch (4 x " in note
    assert "⚠️" not in note and str(studio.root) not in note

    monkeypatch.setattr(plan, "free_memory", lambda device: 1024)
    short = finetune_tab.memory_note(studio, *_values())
    assert "⚠️ **Estimated peak memory" in short and "turn on gradient checkpointing" in short
    checkpointed = finetune_tab.memory_note(studio, *_values(gradient_checkpointing=True))
    assert "⚠️" in checkpointed and "turn on gradient checkpointing" not in checkpointed
    assert str(studio.root) not in short + checkpointed
