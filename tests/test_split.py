"""Train / validation / test splits under the random, speaker and word protocols."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from ser.labels import EMOTIONS
from ser.params import ParamsError, SplitParams
from ser.split import TEST, TRAIN, VALIDATION, assign_parts, fold_parts

SPEAKERS = ("OAF", "YAF")
WORDS = tuple(f"w{i:02d}" for i in range(20))


@pytest.fixture(scope="module")
def index() -> pd.DataFrame:
    rows = [
        {"file": f"audio/{s}_{e}/{s}_{w}_{e}.wav", "speaker": s, "word": w, "emotion": e}
        for s, w, e in itertools.product(SPEAKERS, WORDS, EMOTIONS)
    ]
    # shuffle the rows so no protocol can rely on the order
    return pd.DataFrame(rows).sample(frac=1.0, random_state=7).reset_index(drop=True)


def _split(protocol: str, seed: int = 42, **changes) -> SplitParams:
    values = {"protocol": protocol, "test_speaker": "YAF", "test_fraction": 0.2,
              "validation_fraction": 0.2, "seed": seed, **changes}
    return SplitParams(**values)


PROTOCOLS = ("random", "speaker", "word")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_every_row_gets_a_part(index, protocol):
    parts = assign_parts(index, _split(protocol))
    assert len(parts) == len(index)
    assert set(parts) == {TRAIN, VALIDATION, TEST}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_deterministic_under_the_same_seed(index, protocol):
    first = assign_parts(index, _split(protocol, seed=5))
    second = assign_parts(index.copy(), _split(protocol, seed=5))
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("protocol", ["random", "word"])
def test_test_part_differs_for_another_seed(index, protocol):
    test_a = assign_parts(index, _split(protocol, seed=1)) == TEST
    test_b = assign_parts(index, _split(protocol, seed=2)) == TEST
    assert not np.array_equal(test_a, test_b)


def test_speaker_test_part_does_not_depend_on_seed(index):
    test_a = assign_parts(index, _split("speaker", seed=1)) == TEST
    test_b = assign_parts(index, _split("speaker", seed=2)) == TEST
    np.testing.assert_array_equal(test_a, test_b)
    # validation still follows the seed
    assert not np.array_equal(
        assign_parts(index, _split("speaker", seed=1)) == VALIDATION,
        assign_parts(index, _split("speaker", seed=2)) == VALIDATION,
    )


@pytest.mark.parametrize("test_speaker", SPEAKERS)
def test_speaker_protocol(index, test_speaker):
    parts = assign_parts(index, _split("speaker", test_speaker=test_speaker))
    test = parts == TEST
    assert (index.loc[test, "speaker"] == test_speaker).all()
    assert (index.loc[~test, "speaker"] != test_speaker).all()
    assert test.sum() == len(WORDS) * len(EMOTIONS)


def test_unknown_test_speaker(index):
    with pytest.raises(ParamsError) as info:
        assign_parts(index, _split("speaker", test_speaker="MAF"))
    message = str(info.value)
    assert "split.test_speaker" in message
    assert "'MAF'" in message
    assert "OAF, YAF" in message


def test_test_speaker_is_case_sensitive(index):
    with pytest.raises(ParamsError, match="split.test_speaker"):
        assign_parts(index, _split("speaker", test_speaker="yaf"))


def test_speaker_protocol_needs_two_speakers(index):
    one = index[index["speaker"] == "YAF"].reset_index(drop=True)
    with pytest.raises(ParamsError, match="split.protocol"):
        assign_parts(one, _split("speaker"))


def test_test_speaker_is_ignored_by_other_protocols(index):
    parts = assign_parts(index, _split("random", test_speaker="MAF"))
    assert (parts == TEST).any()


@pytest.mark.parametrize("seed", [0, 1, 42])
def test_word_protocol(index, seed):
    parts = assign_parts(index, _split("word", seed=seed))
    test = parts == TEST
    test_words = set(index.loc[test, "word"])
    other_words = set(index.loc[~test, "word"])
    assert not test_words & other_words
    assert len(test_words) == round(0.2 * len(WORDS))
    # each held-out word is held out whole: every speaker and emotion is in test
    assert test.sum() == len(test_words) * len(SPEAKERS) * len(EMOTIONS)
    assert set(index.loc[test, "speaker"]) == set(SPEAKERS)
    assert set(index.loc[test, "emotion"]) == set(EMOTIONS)


def test_word_protocol_does_not_depend_on_row_order(index):
    reordered = index.sample(frac=1.0, random_state=11).reset_index(drop=True)
    words_a = set(index.loc[assign_parts(index, _split("word")) == TEST, "word"])
    words_b = set(reordered.loc[assign_parts(reordered, _split("word")) == TEST, "word"])
    assert words_a == words_b


def test_word_protocol_needs_training_words(index):
    few = index[index["word"].isin(WORDS[:1])].reset_index(drop=True)
    with pytest.raises(ParamsError, match="split.test_fraction"):
        assign_parts(few, _split("word", test_fraction=0.5))


@pytest.mark.parametrize("test_fraction", [0.2, 0.3])
def test_random_protocol_share_and_stratification(index, test_fraction):
    parts = assign_parts(index, _split("random", test_fraction=test_fraction))
    test = parts == TEST
    assert abs(test.sum() - test_fraction * len(index)) <= 1
    per_emotion = index.loc[test, "emotion"].value_counts()
    assert set(per_emotion.index) == set(EMOTIONS)
    expected = test_fraction * len(index) / len(EMOTIONS)
    assert (abs(per_emotion - expected) <= 1).all(), per_emotion.to_dict()
    # random mixes speakers and words across the parts
    assert set(index.loc[test, "speaker"]) == set(SPEAKERS)
    assert set(index.loc[test, "word"]) & set(index.loc[~test, "word"])


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("seed", [0, 42])
def test_validation_comes_from_the_non_test_part(index, protocol, seed):
    params = _split(protocol, seed=seed)
    parts = assign_parts(index, params)
    test, val = parts == TEST, parts == VALIDATION
    assert not (test & val).any()
    assert val.any() and (parts == TRAIN).any()
    # the test part is chosen first: the validation share does not move it
    other = assign_parts(index, _split(protocol, seed=seed, validation_fraction=0.4))
    np.testing.assert_array_equal(other == TEST, test)
    assert (other == VALIDATION).sum() > val.sum()


@pytest.mark.parametrize("seed", [0, 42])
def test_random_validation_is_a_stratified_share_of_clips(index, seed):
    params = _split("random", seed=seed)
    parts = assign_parts(index, params)
    rest, val = parts != TEST, parts == VALIDATION
    assert abs(val.sum() - params.validation_fraction * rest.sum()) <= 1
    per_emotion = index.loc[val, "emotion"].value_counts()
    expected = params.validation_fraction * rest.sum() / len(EMOTIONS)
    assert (abs(per_emotion.reindex(EMOTIONS, fill_value=0) - expected) <= 1).all()
    # clips, not words: validation words also occur in training
    assert set(index.loc[val, "word"]) & set(index.loc[parts == TRAIN, "word"])


@pytest.mark.parametrize("protocol", ["speaker", "word"])
@pytest.mark.parametrize("seed", [0, 1, 42])
@pytest.mark.parametrize("fraction", [0.2, 0.3])
def test_validation_holds_out_whole_words_of_the_training_part(index, protocol, seed, fraction):
    params = _split(protocol, seed=seed, validation_fraction=fraction)
    parts = assign_parts(index, params)
    train, val, test = (parts == part for part in (TRAIN, VALIDATION, TEST))
    val_words, train_words = set(index.loc[val, "word"]), set(index.loc[train, "word"])
    assert not val_words & train_words
    rest_words = set(index.loc[~test, "word"])
    assert len(val_words) == round(fraction * len(rest_words))
    # a held-out word goes whole: every non-test clip of it is in validation
    rest = index[~test]
    assert val.sum() == rest["word"].isin(val_words).sum()
    assert set(index.loc[val, "emotion"]) == set(EMOTIONS)


def test_speaker_validation_is_the_training_speaker_only(index):
    parts = assign_parts(index, _split("speaker", test_speaker="YAF"))
    assert set(index.loc[parts == VALIDATION, "speaker"]) == {"OAF"}
    assert set(index.loc[parts == TRAIN, "speaker"]) == {"OAF"}
    assert set(index.loc[parts == TEST, "speaker"]) == {"YAF"}
    # 4 of the 20 words of OAF, all emotions
    assert (parts == VALIDATION).sum() == 4 * len(EMOTIONS)


def test_word_validation_and_test_words_are_disjoint(index):
    parts = assign_parts(index, _split("word"))
    words = {part: set(index.loc[parts == part, "word"]) for part in (TRAIN, VALIDATION, TEST)}
    assert not words[TRAIN] & words[VALIDATION]
    assert not words[TRAIN] & words[TEST]
    assert not words[VALIDATION] & words[TEST]
    assert len(words[TEST]) == 4 and len(words[VALIDATION]) == 3 and len(words[TRAIN]) == 13
    # every speaker in every part
    for part in (TRAIN, VALIDATION, TEST):
        assert set(index.loc[parts == part, "speaker"]) == set(SPEAKERS)


def test_validation_words_do_not_depend_on_row_order(index):
    reordered = index.sample(frac=1.0, random_state=3).reset_index(drop=True)
    for protocol in ("speaker", "word"):
        words_a = set(index.loc[assign_parts(index, _split(protocol)) == VALIDATION, "word"])
        words_b = set(reordered.loc[assign_parts(reordered, _split(protocol)) == VALIDATION, "word"])
        assert words_a == words_b


def test_speaker_validation_needs_two_training_words(index):
    one_word = index[index["word"] == WORDS[0]].reset_index(drop=True)
    with pytest.raises(ParamsError, match="split.validation_fraction"):
        assign_parts(one_word, _split("speaker"))


# --- folds ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("test_speaker", SPEAKERS)
def test_speaker_folds_one_per_held_out_speaker(index, test_speaker):
    params = _split("speaker", test_speaker=test_speaker)
    folds = fold_parts(index, params)
    other = next(s for s in SPEAKERS if s != test_speaker)
    assert list(folds) == [f"test_{test_speaker}", f"test_{other}"]  # the configured speaker first
    for name, parts in folds.items():
        held_out = name.removeprefix("test_")
        np.testing.assert_array_equal(parts, assign_parts(index, _split("speaker", test_speaker=held_out)))
        assert set(index.loc[parts == TEST, "speaker"]) == {held_out}
        assert held_out not in set(index.loc[parts != TEST, "speaker"])
    np.testing.assert_array_equal(folds[f"test_{test_speaker}"], assign_parts(index, params))


def test_speaker_folds_with_three_speakers(index):
    third = index[index["speaker"] == "OAF"].assign(speaker="MAF", file=lambda f: f["file"].str.replace("OAF", "MAF"))
    three = pd.concat([index, third], ignore_index=True)
    folds = fold_parts(three, _split("speaker", test_speaker="YAF"))
    assert list(folds) == ["test_YAF", "test_MAF", "test_OAF"]
    for name, parts in folds.items():
        speaker = name.removeprefix("test_")
        assert set(three.loc[parts == TEST, "speaker"]) == {speaker}
        assert set(three.loc[parts == TRAIN, "speaker"]) == set(("MAF", "OAF", "YAF")) - {speaker}
    # every clip is tested exactly once over the folds
    tested = np.sum([parts == TEST for parts in folds.values()], axis=0)
    np.testing.assert_array_equal(tested, 1)


@pytest.mark.parametrize("protocol", ["random", "word"])
def test_other_protocols_have_one_fold_named_after_them(index, protocol):
    params = _split(protocol)
    folds = fold_parts(index, params)
    assert list(folds) == [protocol]
    np.testing.assert_array_equal(folds[protocol], assign_parts(index, params))


def test_fold_parts_unknown_test_speaker(index):
    with pytest.raises(ParamsError, match="split.test_speaker"):
        fold_parts(index, _split("speaker", test_speaker="MAF"))


def _tiny(per_emotion: int) -> pd.DataFrame:
    rows = [
        {"file": f"audio/{s}_w{i}_{e}.wav", "speaker": s, "word": f"w{i}", "emotion": e}
        for e in EMOTIONS for i in range(per_emotion) for s in SPEAKERS[i % 2:i % 2 + 1]
    ]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("seed", [0, 1, 42])
def test_tiny_corpus_keeps_every_emotion_in_every_part(seed):
    tiny = _tiny(3)  # 21 clips: 20% would be 4 test clips, fewer than the 7 emotions
    parts = assign_parts(tiny, _split("random", seed=seed))
    for part in (TRAIN, VALIDATION, TEST):
        assert set(tiny.loc[parts == part, "emotion"]) == set(EMOTIONS), part


def test_too_tiny_corpus_raises_params_error():
    with pytest.raises(ParamsError, match="too few"):
        assign_parts(_tiny(2), _split("random"))


def test_too_tiny_corpus_error_names_the_key():
    with pytest.raises(ParamsError) as info:
        assign_parts(_tiny(2), _split("random"))
    assert "split.validation_fraction" in str(info.value) or "split.test_fraction" in str(info.value)
