import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from raft.scores import ScaleError, check_scale, find_score_tokens, parse_result

CORPUS = ["[RESULT] 1", "[RESULT] 2", "[RESULT] 3", "[RESULT] 4", "[RESULT] 5", "score 10 of 10"] * 50


def _wrap(tok):
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>")


def gpt2_style():
    """Byte-level BPE without digit splitting: ' 4' becomes one token ('Ġ4')."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        CORPUS,
        trainers.BpeTrainer(
            vocab_size=300, special_tokens=["<unk>", "<pad>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    return _wrap(tok)


def sentencepiece_style(corpus=CORPUS[:5] * 50):
    """Metaspace (SentencePiece-like) unigram tokenizer, as Llama/Mistral use."""
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first")
    tok.decoder = decoders.Metaspace(prepend_scheme="first")
    tok.train_from_iterator(
        corpus, trainers.UnigramTrainer(vocab_size=60, special_tokens=["<unk>", "<pad>"], unk_token="<unk>")
    )
    return _wrap(tok)


def test_tiny_byte_level_tokenizer_uses_bare_digits(tiny_judge):
    st = tiny_judge.score_tokens
    assert st.variant == "bare" and st.cue == "[RESULT] "
    assert st.tokens == ("1", "2", "3", "4", "5")
    assert tiny_judge.score_token_ids == [tiny_judge.tokenizer.convert_tokens_to_ids(t) for t in "12345"]


def test_gpt2_style_tokenizer_uses_space_prefixed_digits():
    tok = gpt2_style()
    st = find_score_tokens(tok)
    assert st.variant == "space-prefixed" and st.cue == "[RESULT]"
    assert st.tokens == ("Ġ1", "Ġ2", "Ġ3", "Ġ4", "Ġ5")
    for k in range(1, 6):
        assert tok(st.cue + f" {k}", add_special_tokens=False)["input_ids"][-1] == st.id_for(k)


def test_sentencepiece_style_tokenizer():
    tok = sentencepiece_style()
    st = find_score_tokens(tok)
    assert len(set(st.ids)) == 5
    for k in range(1, 6):
        ids = tok("[RESULT] " + str(k), add_special_tokens=False)["input_ids"]
        assert ids[-1] == st.id_for(k)
        assert tok.decode([st.id_for(k)]).strip() == str(k)


def test_labels_that_tokenize_inconsistently_are_refused():
    tok = sentencepiece_style(CORPUS)  # '10' in the corpus makes '▁1' a token, but not '▁2'
    with pytest.raises(ScaleError, match="not single tokens"):
        find_score_tokens(tok)


def test_multi_token_labels_are_refused_clearly(tiny_judge):
    with pytest.raises(ScaleError, match=r"label\(s\) 10 are not single tokens"):
        find_score_tokens(tiny_judge.tokenizer, (1, 10))


def test_other_single_token_scales_work(tiny_judge):
    assert find_score_tokens(tiny_judge.tokenizer, (0, 9)).values == tuple(range(10))


@pytest.mark.parametrize("scale", [(5, 1), (3, 3), ("a", 2), (1,)])
def test_bad_scales_are_refused(scale):
    with pytest.raises(ScaleError):
        check_scale(scale)


@pytest.mark.parametrize(
    "text, feedback, score",
    [
        ("Feedback: Good answer. [RESULT] 4", "Good answer.", 4),
        ("Clear and complete. [RESULT] 5", "Clear and complete.", 5),
        ("[RESULT] 3", "", 3),
        ("Weak. [RESULT] (2)", "Weak.", 2),
        ("Mentions [RESULT] 1 then [RESULT] 3", "Mentions", 3),
        ("Feedback: fine. [RESULT] 9", "fine.", None),
        ("Feedback: no score here", "no score here", None),
        ("The score is 4/5", "The score is 4/5", 4),
        ("Score: 2", "Score: 2", 2),
        ("... so its score is 4 overall. [RESULT] 4", "... so its score is 4 overall.", 4),
        ("Average. [RESULT] 3.5", "Average.", 3.5),
        ("", "", None),
    ],
)
def test_parse_result(text, feedback, score):
    assert parse_result(text) == (feedback, score)


@pytest.mark.parametrize(
    "text, feedback",
    [
        ("... so its score is 4 overall. [RESULT] ", "... so its score is 4 overall."),
        ("Good. [RESULT] ", "Good."),
        ("Good. [RESULT]", "Good."),
        ("Feedback: Good. [RESULT] 4", "Good."),
        ("feedback: lower-case label [RESULT] 2", "lower-case label"),
        ("Score: 2 is what a weaker answer gets", "Score: 2 is what a weaker answer gets"),
        ("No cue written at all", "No cue written at all"),
        ("  spaced out  ", "spaced out"),
        ("[RESULT] 3", ""),
        ("Twice [RESULT] 3 and [RESULT] 4", "Twice"),
        ("Résumé ✓ 日本語 [RESULT] 5", "Résumé ✓ 日本語"),
        ("", ""),
        (None, ""),
    ],
)
def test_feedback_is_cut_only_at_the_cue(text, feedback):
    from raft.scores import split_feedback

    assert split_feedback(text) == feedback
