"""The pairwise parts of the studio's tabs (issue 25), each built inside its tab by one call: the
Score tab's two answers side by side, Batch on a pairs file, the Dataset tab's pairwise dataset and
Evaluate's pair report card. Handlers are in app.pairwise."""

from __future__ import annotations

from typing import Any

import gradio as gr

from app import pairwise
from app.studio import MODE_CHOICES, Studio, bind, model_dropdown
from raft.files import SUFFIXES
from raft.pairs import DEFAULT_CRITERION

PAIR_GLOSSARY = (
    "<small>**P(A)**: the probability of the verdict token A renormalised over A and B after `[RESULT]`, read in "
    "one forward pass per order. **Combined**: (P_AB(A) + 1 − P_BA(A)) / 2, the same whichever answer is shown "
    "first. **Position bias**: P_AB(A) − (1 − P_BA(A)), how much the first position wins on its own.</small>"
)
SCORE_TITLE = "Compare two answers (pairwise)"
MAPPING_LABEL = "Column mapping (optional: field=column, for columns not recognised by name)"


def score_view(studio: Studio) -> dict[str, Any]:
    """Compare two answers: instruction, criterion, optional reference, A and B side by side."""
    with gr.Accordion(SCORE_TITLE, open=False, elem_id="pair-score"):
        with gr.Row():
            model = model_dropdown(studio, elem_id="pair-model")
            mode = gr.Radio(MODE_CHOICES, value="score_only", label="Mode", elem_id="pair-mode")
            both = gr.Checkbox(True, label="Score both orders (removes position bias)", elem_id="pair-both")
        instruction = gr.Textbox(label="Instruction", lines=2, elem_id="pair-instruction")
        criterion = gr.Textbox(DEFAULT_CRITERION, label="Criterion (rubric)", lines=1, elem_id="pair-criterion")
        reference = gr.Textbox(label="Reference answer (optional)", lines=2, elem_id="pair-reference")
        with gr.Row():
            response_a = gr.Textbox(label="Response A", lines=6, elem_id="pair-a")
            response_b = gr.Textbox(label="Response B", lines=6, elem_id="pair-b")
        max_new_tokens = gr.Slider(16, 1024, value=256, step=16, label="Max new tokens (feedback)", visible=False)
        go_btn = gr.Button("Compare", variant="primary", elem_id="pair-button")
        result = gr.Markdown(elem_id="pair-result")
        gr.Markdown(PAIR_GLOSSARY)
        plot = gr.Plot(label="P(A) against P(B)", elem_id="pair-plot")
        details = gr.JSON(label="Details")
    mode.change(lambda m: gr.Slider(visible=m == "feedback"), mode, max_new_tokens, show_progress="hidden")
    model.change(studio.model_mode, model, mode, api_name=False, show_progress="hidden")
    go_btn.click(
        bind(pairwise.score_pair, studio),
        [model, mode, instruction, response_a, response_b, reference, criterion, both, max_new_tokens],
        [result, plot, details],
        api_name="score_pair",
    )
    return {"models": [model]}


def batch_view(studio: Studio) -> dict[str, Any]:
    """Score a pairs file: P(A) per order and combined, the file's position bias, downloads."""
    with gr.Accordion("A pairs file (pairwise)", open=False, elem_id="pair-batch"):
        gr.Markdown(
            "Columns are recognised as the library does: orig_response_A/orig_response_B, chosen/rejected, "
            "response_a/response_b with winner; a preference column (A/B, tie or a share) gives the report card."
        )
        with gr.Row():
            upload = gr.File(
                label="Pairs (.csv, .jsonl, .json, .parquet)", file_types=list(SUFFIXES), elem_id="pair-batch-file"
            )
            with gr.Column():
                model = model_dropdown(studio, elem_id="pair-batch-model")
                mode = gr.Radio(MODE_CHOICES, value="score_only", label="Mode")
                both = gr.Checkbox(True, label="Score both orders")
                batch_size = gr.Slider(1, 64, value=8, step=1, label="Batch size")
                criterion = gr.Textbox(label="Criterion for pairs that bring none", placeholder=DEFAULT_CRITERION)
                columns = gr.Textbox(
                    label=MAPPING_LABEL, placeholder="orig_response_A=answer_1, orig_response_B=answer_2"
                )
                run = gr.Button("Score all pairs", variant="primary", elem_id="pair-batch-button")
        summary = gr.Markdown(elem_id="pair-batch-summary")
        table = gr.Dataframe(headers=pairwise.TABLE_COLUMNS, label="Pairs", interactive=False, wrap=True)
        downloads = gr.File(label="Download (CSV, JSONL)", file_count="multiple", interactive=False)
    scored = run.click(
        bind(pairwise.score_pairs_batch, studio),
        [upload, model, mode, both, batch_size, criterion, columns],
        [summary, table, downloads],
        api_name="score_pairs",
    )
    model.change(studio.model_mode, model, mode, api_name=False, show_progress="hidden")
    return {"models": [model], "scored": scored}


def dataset_view(studio: Studio) -> dict[str, Any]:
    """A pairwise training set from an absolute file (pairs from scores) or from a pairs file."""
    with gr.Accordion("Pairwise dataset (pairs from scores, or a pairs file)", open=False, elem_id="pair-dataset"):
        gr.Markdown(
            "**Pairs from scores**: every two rows answering the same question (idx, question_id, prompt_id, else "
            "the instruction) with different gold scores make a pair; the higher gold is preferred. A pairs file "
            "is used as it is. Each pair is trained in both orders."
        )
        with gr.Row():
            upload = gr.File(
                label="Rows (.csv, .jsonl, .json, .parquet)", file_types=list(SUFFIXES), elem_id="pair-dataset-file"
            )
            with gr.Column():
                source = gr.Radio(pairwise.SOURCES, value=pairwise.FROM_SCORES, label="The pairs come from")
                ties = gr.Radio(pairwise.TIE_CHOICES, value="drop", label="Two answers with equal gold")
                group_by = gr.Textbox(label="Question column (optional)", info="default: idx, question_id, ...")
                mode = gr.Radio(MODE_CHOICES, value="score_only", label="Mode")
                validation = gr.Slider(0.0, 0.5, value=0.1, step=0.05, label="Validation share (by question)")
                seed = gr.Number(0, precision=0, label="Seed")
                name = gr.Textbox("pairs", label="Dataset name", elem_id="pair-dataset-name")
                columns = gr.Textbox(
                    label=MAPPING_LABEL, placeholder="orig_score=rating (or pair fields for a pairs file)"
                )
                go_btn = gr.Button("Build and write", variant="primary", elem_id="pair-dataset-button")
        note = gr.Markdown(elem_id="pair-dataset-note")
        preview = gr.Dataframe(label="First pairs (A shown first)", interactive=False, wrap=True)
        files = gr.File(label="Dataset files", file_count="multiple", interactive=False)
    written = go_btn.click(
        bind(pairwise.build_pairs_dataset, studio),
        [upload, source, ties, group_by, mode, validation, seed, name, columns],
        [note, preview, files],
        api_name="pairs_dataset",
    )
    return {"written": written, "name": name}


def evaluate_view(studio: Studio) -> dict[str, Any]:
    """The report card of scored pairs: accuracy, AUC, Brier, position consistency, reliability."""
    with gr.Accordion("Pairs report card (pairwise)", open=False, elem_id="pair-evaluate"):
        with gr.Row():
            choice = gr.Dropdown([], label="Scored pairs file (Batch)", allow_custom_value=False)
            upload = gr.File(label="...or a scored pairs file", file_types=list(SUFFIXES))
            refresh = gr.Button("Refresh the list")
        run = gr.Button("Report card", variant="primary", elem_id="pair-card-button")
        card = gr.Markdown(elem_id="pair-card")
        plot = gr.Plot(label="Reliability of P(A)")
        files = gr.File(label="Download (JSON, Markdown)", file_count="multiple", interactive=False)
    listed = bind(pairwise.pair_result_choices, studio)
    refresh.click(listed, None, choice, api_name="pair_results")
    run.click(bind(pairwise.pair_card, studio), [choice, upload], [card, plot, files], api_name="pair_card")
    return {"results": choice, "list": listed}
