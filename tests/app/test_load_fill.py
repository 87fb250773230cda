"""The synthetic sample's mapping, filled as the page loads, never lands on a file uploaded while
the page was still loading: the late fill is dropped once the source is a file."""

import gradio as gr

from app import dataset_tab, mapping

SAMPLE = ["orig_instruction", "orig_response", "orig_score", "orig_criteria"]


def test_the_load_fill_is_dropped_once_a_file_is_uploaded():
    with gr.Blocks():
        form = mapping.build("t")
    on_load = dataset_tab.fill_on_load(form)
    outputs = [form["columns"], *form["dropdowns"].values(), form["rubric"], form["criterion"], *form["levels"]]
    late = on_load("uploaded file", "/tmp/gradio/mine.csv", SAMPLE)  # the visitor switched and uploaded first
    assert len(late) == len(outputs) and all(isinstance(u, type(gr.skip())) for u in late)
    assert all(isinstance(u, type(gr.skip())) for u in on_load("synthetic sample", "/tmp/gradio/mine.csv", SAMPLE))
    filled = on_load("synthetic sample", None, SAMPLE)  # still on the sample: its mapping fills the form
    assert len(filled) == len(outputs) and filled[0] == SAMPLE
    assert filled[1 + mapping.MAPPED.index("orig_score")].value == "orig_score"
