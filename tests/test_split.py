"""Train / validation / test splits under the random, speaker and word protocols."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from ser.labels import EMOTIONS
from ser.params import ParamsError, SplitParams
from ser.split import TEST, TRAIN, VALIDATION, assign_parts

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
    rest = ~test
    assert abs(val.sum() - params.validation_fraction * rest.sum()) <= 1
    # stratified by emotion within the non-test part
    per_emotion = index.loc[val, "emotion"].value_counts()
    expected = params.validation_fraction * rest.sum() / len(EMOTIONS)
    assert (abs(per_emotion.reindex(EMOTIONS, fill_value=0) - expected) <= 1).all()
    # the test part is chosen first: the validation share does not move it
    other = assign_parts(index, _split(protocol, seed=seed, validation_fraction=0.4))
    np.testing.assert_array_equal(other == TEST, test)
    if protocol == "speaker":
        assert (index.loc[val, "speaker"] != params.test_speaker).all()
    if protocol == "word":
        assert not set(index.loc[val, "word"]) & set(index.loc[test, "word"])


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
