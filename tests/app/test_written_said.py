"""Write says what it wrote: the dataset's name, its example counts, and where it went next."""

from app import dataset_tab


def test_write_says_the_dataset_was_written(studio, monkeypatch):
    said = []
    monkeypatch.setattr(dataset_tab.gr, "Info", lambda message, *a, **k: said.append(message))
    out = dataset_tab.preview(studio, "synthetic sample", None, "", 40, "", "score_only", "", "none", 0, 0.25, 0)
    dataset_tab.write(studio, out[0], "mine", "none")
    assert said == ["Dataset 'mine' written: 30 training and 10 validation examples. The Fine-tune tab has chosen it."]
