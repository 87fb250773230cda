import pytest

from raft.prompts import SCORE_CUE, Template, TemplateError, apply_chat, builtin_templates, load_template, target_text

SECTIONS = [
    "###Task Description:",
    "###The instruction to evaluate:",
    "###Response to evaluate:",
    "###Reference Answer (Score 5):",
    "###Score Rubrics:",
]


@pytest.mark.parametrize("mode", ["score_only", "feedback"])
def test_default_templates_follow_the_section_order(mode, rows):
    text = load_template(None, mode, reference=True).fill(rows[0])
    positions = [text.index(s) for s in SECTIONS]
    assert positions == sorted(positions)
    assert rows[0]["orig_response"] in text and rows[0]["orig_reference_answer"] in text
    assert "[" + rows[0]["orig_criteria"] + "]" in text
    for k in range(1, 6):
        assert f"Score {k}: {rows[0][f'orig_score{k}_description']}" in text
    cue = "###Feedback:" if mode == "feedback" else "###Score:"
    assert text.rstrip().endswith(cue)


@pytest.mark.parametrize("mode", ["score_only", "feedback"])
def test_no_reference_templates_have_no_reference_section(mode, rows):
    template = load_template(None, mode, reference=False)
    assert not template.uses_reference
    assert "###Reference Answer" not in template.fill(rows[0])


def test_builtin_templates_are_all_listed():
    assert builtin_templates() == [
        "absolute_feedback",
        "absolute_feedback_noref",
        "absolute_score",
        "absolute_score_noref",
    ]


@pytest.mark.parametrize(
    "text, message",
    [
        ("{instruction} {response} {rubric} {colour}", "unknown placeholder '{colour}'"),
        ("{instruction} {response}", "missing placeholder(s) '{rubric}'"),
        ("{instruction} {response!r} {rubric}", "unknown placeholder '{response}'"),
        ("{instruction} {response} {rubric} {", "literal braces"),
    ],
)
def test_bad_templates_are_refused_naming_the_placeholder(text, message):
    with pytest.raises(TemplateError, match="template 'mine'") as err:
        Template("mine", text)
    assert message in str(err.value)


def test_a_user_template_file_works_like_a_builtin(tmp_path, rows):
    path = tmp_path / "short.txt"
    path.write_text("Q: {instruction}\nA: {response}\n{rubric}\nRate {min_score}-{max_score}. {{literal}}")
    template = load_template(path)
    assert template.name == "short"
    text = template.fill(rows[0])
    assert text.startswith(f"Q: {rows[0]['orig_instruction']}") and text.endswith("Rate 1-5. {literal}")


def test_unknown_template_name_lists_the_builtins():
    with pytest.raises(TemplateError, match="absolute_score"):
        load_template("nope")


def test_chat_template_is_applied_when_present(tiny_judge):
    text = apply_chat(tiny_judge.tokenizer, "hello")
    assert text == "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"


def test_score_only_cue_is_the_training_target_prefix(tiny_judge, rows):
    rendered = tiny_judge.render(rows[0])
    assert rendered.endswith(SCORE_CUE)
    assert target_text("score_only", 4) == SCORE_CUE + "4"
    assert target_text("feedback", 2, "Too short.") == "Feedback: Too short. [RESULT] 2"
