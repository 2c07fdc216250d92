"""Evaluation folds over several corpora: the speaker, corpus, text and random protocols, validation
carved from the training part, determinism, and the errors that name the bad key."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from ser.params import ParamsError, SplitParams
from ser.split import (
    TEST, TRAIN, UNUSED, VALIDATION, assign_parts, fold_parts, fold_tests, held_out_texts, single_emotion_note,
    single_emotion_texts, speaker_folds, validation_speakers,
)

CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
# corpus -> (speakers, texts): unequal sizes, as real corpora are
CORPORA = {
    "tess": (("OAF", "YAF"), tuple(f"w{i:02d}" for i in range(10))),
    "ravdess": (("01", "02", "03", "04", "05", "06"), ("kids", "dogs")),
    "emovo": (("f1", "f2", "m1", "m2"), ("b1", "b2", "l1")),
}
N_SPEAKERS = sum(len(speakers) for speakers, _ in CORPORA.values())


def make_index(corpora: dict = CORPORA, classes=CLASSES, seed: int = 7) -> pd.DataFrame:
    """Every speaker of every corpus saying every text with every class, speakers qualified by corpus;
    rows shuffled so that no protocol can rely on their order."""
    rows = [
        {"file": f"{corpus}/{speaker}_{text}_{emotion}.wav", "corpus": corpus, "speaker": f"{corpus}/{speaker}",
         "text": text, "emotion": emotion}
        for corpus, (speakers, texts) in corpora.items()
        for speaker, text, emotion in itertools.product(speakers, texts, classes)
    ]
    return pd.DataFrame(rows).sample(frac=1.0, random_state=seed).reset_index(drop=True)


@pytest.fixture(scope="module")
def index() -> pd.DataFrame:
    return make_index()


def _split(protocol: str, seed: int = 42, **changes) -> SplitParams:
    values = {"protocol": protocol, "folds": 4, "train_corpora": [], "test_fraction": 0.2,
              "validation_fraction": 0.2, "seed": seed, **changes}
    return SplitParams(**values)


def _share(fraction: float, count: int) -> int:
    """Round half up, as the split documents ("about fraction of ...")."""
    return math.floor(fraction * count + 0.5)


def _values(index: pd.DataFrame, parts: np.ndarray, part: str, column: str) -> set:
    return set(index.loc[parts == part, column])


PROTOCOLS = ("speaker", "corpus", "text", "random")


# --- every protocol ---------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_every_fold_gives_every_row_a_part(index, protocol):
    folds = fold_parts(index, _split(protocol))
    assert folds
    for name, parts in folds.items():
        assert len(parts) == len(index), name
        assert set(parts) <= {TRAIN, VALIDATION, TEST, UNUSED}
        assert {TRAIN, VALIDATION, TEST} <= set(parts), name
        assert UNUSED not in set(parts), name  # only corpus with train_corpora leaves rows out


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("seed", [0, 42])
def test_deterministic_under_the_split_seed(index, protocol, seed):
    first = fold_parts(index, _split(protocol, seed=seed))
    second = fold_parts(index.copy(), _split(protocol, seed=seed))
    assert list(first) == list(second)
    for name in first:
        np.testing.assert_array_equal(first[name], second[name])


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_another_seed_gives_other_parts(index, protocol):
    first, second = fold_parts(index, _split(protocol, seed=1)), fold_parts(index, _split(protocol, seed=2))
    assert list(first) == list(second)
    assert any(not np.array_equal(first[name], second[name]) for name in first)


@pytest.mark.parametrize("protocol", ["speaker", "corpus", "text"])
def test_parts_do_not_depend_on_row_order(index, protocol):
    """Speakers and texts are chosen by name: shuffled rows get the same parts, row for row."""
    reordered = index.sample(frac=1.0, random_state=11).reset_index(drop=True)
    first, second = fold_parts(index, _split(protocol)), fold_parts(reordered, _split(protocol))
    assert list(first) == list(second)
    for name in first:
        by_file = dict(zip(index["file"], first[name]))
        assert [by_file[f] for f in reordered["file"]] == list(second[name]), name


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_fold_parts_ignores_the_frames_index_labels(index, protocol):
    """A filtered index (labels with gaps, not 0..n-1) gets the parts of the same rows renumbered."""
    gappy = index.set_axis(np.arange(len(index)) * 3 + 5)
    expected = fold_parts(index, _split(protocol))
    got = fold_parts(gappy, _split(protocol))
    assert list(got) == list(expected)
    for name, parts in got.items():
        np.testing.assert_array_equal(parts, expected[name])


@pytest.mark.parametrize("protocol", ["speaker", "corpus", "text", "random"])
@pytest.mark.parametrize("seed", [0, 42])
def test_the_test_part_is_chosen_before_validation(index, protocol, seed):
    """A larger validation share takes more training clips and never moves the test part."""
    small = fold_parts(index, _split(protocol, seed=seed, validation_fraction=0.2))
    large = fold_parts(index, _split(protocol, seed=seed, validation_fraction=0.45))
    for name in small:
        np.testing.assert_array_equal(small[name] == TEST, large[name] == TEST)
        assert (large[name] == VALIDATION).sum() >= (small[name] == VALIDATION).sum()
        assert not ((small[name] == VALIDATION) & (small[name] == TEST)).any()
    assert sum((large[n] == VALIDATION).sum() for n in large) > sum((small[n] == VALIDATION).sum() for n in small)


# --- speaker ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("folds", [2, 3, 4, 12])
def test_speaker_folds_test_every_speaker_exactly_once(index, folds):
    parts = fold_parts(index, _split("speaker", folds=folds))
    assert list(parts) == [f"fold{k}" for k in range(1, folds + 1)]
    tested = np.sum([p == TEST for p in parts.values()], axis=0)
    np.testing.assert_array_equal(tested, 1)  # every clip, hence every speaker, once
    for name, p in parts.items():
        test_speakers = _values(index, p, TEST, "speaker")
        assert test_speakers, name
        # whole speakers: none of a test speaker's clips trains or validates
        assert not test_speakers & (_values(index, p, TRAIN, "speaker") | _values(index, p, VALIDATION, "speaker"))
        assert (p[index["speaker"].isin(test_speakers).to_numpy()] == TEST).all()
        # everyone else trains or validates
        assert set(index["speaker"]) - test_speakers == _values(index, p, TRAIN, "speaker") | _values(index, p, VALIDATION, "speaker")


@pytest.mark.parametrize("folds", [2, 3, 4, 5])
@pytest.mark.parametrize("seed", [0, 1, 42])
def test_speaker_folds_are_balanced_by_corpus(index, folds, seed):
    dealt = speaker_folds(index, folds, seed)
    assert len(dealt) == folds
    assert sorted(s for fold in dealt for s in fold) == sorted(index["speaker"].unique())
    sizes = [len(fold) for fold in dealt]
    assert max(sizes) - min(sizes) <= 1
    for corpus, (speakers, _) in CORPORA.items():
        per_fold = [sum(s.startswith(f"{corpus}/") for s in fold) for fold in dealt]
        assert sum(per_fold) == len(speakers)
        assert max(per_fold) - min(per_fold) <= 1, (corpus, per_fold)


def test_speaker_folds_match_fold_parts(index):
    dealt = speaker_folds(index, 4, 42)
    for speakers, (name, parts) in zip(dealt, fold_parts(index, _split("speaker", folds=4)).items()):
        assert _values(index, parts, TEST, "speaker") == set(speakers), name


def test_speaker_folds_follow_the_seed(index):
    assert speaker_folds(index, 4, 1) == speaker_folds(index, 4, 1)
    assert speaker_folds(index, 4, 1) != speaker_folds(index, 4, 2)


@pytest.mark.parametrize("folds", [2, 4])
@pytest.mark.parametrize("fraction", [0.2, 0.34])
@pytest.mark.parametrize("seed", [0, 42])
def test_speaker_validation_is_a_share_of_each_corpus_training_speakers(index, folds, fraction, seed):
    for name, parts in fold_parts(index, _split("speaker", folds=folds, validation_fraction=fraction, seed=seed)).items():
        train, val = _values(index, parts, TRAIN, "speaker"), _values(index, parts, VALIDATION, "speaker")
        assert val and train and not val & train, name  # whole speakers
        expected = {}
        for corpus in CORPORA:
            training = {s for s in train | val if s.startswith(f"{corpus}/")}
            expected[corpus] = _share(fraction, len(training))
            assert sum(s.startswith(f"{corpus}/") for s in val) == expected[corpus], (name, corpus, sorted(val))
        assert sum(expected.values()) > 0  # the fallback to one speaker is tested below


def test_validation_takes_at_least_one_speaker():
    """Two speakers per corpus, two folds: 20% of one training speaker is none, yet one speaker validates."""
    two = make_index({"tess": (("OAF", "YAF"), ("w1", "w2")), "ravdess": (("01", "02"), ("s1", "s2"))})
    for name, parts in fold_parts(two, _split("speaker", folds=2)).items():
        val, train = _values(two, parts, VALIDATION, "speaker"), _values(two, parts, TRAIN, "speaker")
        assert len(val) == 1 and len(train) == 1, name
        assert not val & _values(two, parts, TEST, "speaker")
    assert len(validation_speakers(two, 0.01, 0)) == 1


@pytest.mark.parametrize("seed", [0, 42])
def test_validation_speakers_per_corpus(index, seed):
    chosen = validation_speakers(index, 0.34, seed)
    assert len(chosen) == len(set(chosen))
    for corpus, (speakers, _) in CORPORA.items():
        assert sum(s.startswith(f"{corpus}/") for s in chosen) == _share(0.34, len(speakers))
    assert set(chosen) <= set(index["speaker"])
    assert validation_speakers(index, 0.34, seed) == chosen


@pytest.mark.parametrize("fraction", [0.5, 0.75])
def test_validation_never_takes_every_training_clip(fraction):
    """However the shares round, a fold keeps clips to train on (or the split refuses, naming the key):
    here every corpus has one training speaker per fold, and half of one speaker rounds up to one."""
    two = make_index({"tess": (("OAF", "YAF"), ("w1", "w2", "w3")), "ravdess": (("01", "02"), ("s1", "s2", "s3"))})
    try:
        folds = fold_parts(two, _split("speaker", folds=2, validation_fraction=fraction))
    except ParamsError as exc:
        assert "split.validation_fraction" in str(exc)
        return
    for name, parts in folds.items():
        assert (parts == TRAIN).any(), f"{name}: every training clip went to validation"
        assert (parts == VALIDATION).any(), name


def test_a_single_training_speaker_validates_on_held_out_texts():
    one_each = make_index({"tess": (("OAF", "YAF"), tuple(f"w{i}" for i in range(10)))})
    for name, parts in fold_parts(one_each, _split("speaker", folds=2)).items():
        (speaker,) = _values(one_each, parts, TRAIN, "speaker")
        assert _values(one_each, parts, VALIDATION, "speaker") == {speaker}
        val_texts, train_texts = _values(one_each, parts, VALIDATION, "text"), _values(one_each, parts, TRAIN, "text")
        assert len(val_texts) == 2 and not val_texts & train_texts, name  # 20% of 10 texts, held out whole
        rest = one_each[parts != TEST]
        assert (parts == VALIDATION).sum() == rest["text"].isin(val_texts).sum()
        assert _values(one_each, parts, VALIDATION, "emotion") == set(CLASSES)


def test_speaker_protocol_needs_two_speakers(index):
    one = index[index["speaker"] == "tess/OAF"]
    with pytest.raises(ParamsError, match="split.protocol"):
        fold_parts(one, _split("speaker", folds=2))


@pytest.mark.parametrize("folds", [N_SPEAKERS + 1, 100])
def test_more_folds_than_speakers_is_a_params_error(index, folds):
    with pytest.raises(ParamsError) as info:
        fold_parts(index, _split("speaker", folds=folds))
    message = str(info.value)
    assert "split.folds" in message
    assert str(folds) in message and str(N_SPEAKERS) in message


def test_as_many_folds_as_speakers_is_leave_one_speaker_out(index):
    folds = fold_parts(index, _split("speaker", folds=N_SPEAKERS))
    assert len(folds) == N_SPEAKERS
    assert sorted(s for p in folds.values() for s in _values(index, p, TEST, "speaker")) == sorted(index["speaker"].unique())
    assert all(len(_values(index, p, TEST, "speaker")) == 1 for p in folds.values())


def test_same_speaker_name_in_two_corpora_are_two_speakers():
    """Speaker ids are qualified by corpus: RAVDESS's actor 01 and another corpus's 01 are not one voice."""
    twins = make_index({"ravdess": (("01", "02"), ("s1", "s2")), "emovo": (("01", "02"), ("b1", "b2"))})
    assert twins["speaker"].nunique() == 4
    folds = fold_parts(twins, _split("speaker", folds=4))
    assert all(len(_values(twins, p, TEST, "speaker")) == 1 for p in folds.values())


# --- corpus -----------------------------------------------------------------------------------------


def test_corpus_protocol_leaves_each_corpus_out(index):
    folds = fold_parts(index, _split("corpus"))
    assert list(folds) == ["test_emovo", "test_ravdess", "test_tess"]
    for name, parts in folds.items():
        held_out = name.removeprefix("test_")
        assert _values(index, parts, TEST, "corpus") == {held_out}
        np.testing.assert_array_equal(parts == TEST, (index["corpus"] == held_out).to_numpy())
        others = set(CORPORA) - {held_out}
        assert _values(index, parts, TRAIN, "corpus") | _values(index, parts, VALIDATION, "corpus") == others
        assert not (parts == UNUSED).any()
        # validation: whole speakers of the training corpora
        assert not _values(index, parts, VALIDATION, "speaker") & _values(index, parts, TRAIN, "speaker")
    tested = np.sum([p == TEST for p in folds.values()], axis=0)
    np.testing.assert_array_equal(tested, 1)


def test_corpus_protocol_with_train_corpora(index):
    folds = fold_parts(index, _split("corpus", train_corpora=["tess"]))
    assert list(folds) == ["test_emovo", "test_ravdess"]  # the training corpus is never tested
    for name, parts in folds.items():
        held_out = name.removeprefix("test_")
        assert _values(index, parts, TEST, "corpus") == {held_out}
        assert _values(index, parts, TRAIN, "corpus") | _values(index, parts, VALIDATION, "corpus") == {"tess"}
        # the third corpus is neither trained nor tested on
        (other,) = set(CORPORA) - {"tess", held_out}
        np.testing.assert_array_equal(parts == UNUSED, (index["corpus"] == other).to_numpy())
        # tess has two speakers: one validates, the other trains
        assert len(_values(index, parts, VALIDATION, "speaker")) == 1
        assert len(_values(index, parts, TRAIN, "speaker")) == 1


def test_corpus_protocol_with_two_train_corpora(index):
    folds = fold_parts(index, _split("corpus", train_corpora=["ravdess", "emovo"]))
    assert list(folds) == ["test_tess"]
    parts = folds["test_tess"]
    assert not (parts == UNUSED).any()
    assert _values(index, parts, TRAIN, "corpus") == {"ravdess", "emovo"}
    assert _values(index, parts, VALIDATION, "corpus") == {"ravdess", "emovo"}  # 20% of 6 and of 4 speakers: one each


def test_unknown_train_corpus_is_a_params_error(index):
    with pytest.raises(ParamsError) as info:
        fold_parts(index, _split("corpus", train_corpora=["tess", "savee"]))
    message = str(info.value)
    assert "split.train_corpora" in message and "savee" in message
    assert "emovo, ravdess, tess" in message  # what the data has


def test_train_corpora_is_case_sensitive(index):
    with pytest.raises(ParamsError, match="split.train_corpora"):
        fold_parts(index, _split("corpus", train_corpora=["TESS"]))


def test_training_on_every_corpus_leaves_none_to_test(index):
    with pytest.raises(ParamsError, match="split.protocol"):
        fold_parts(index, _split("corpus", train_corpora=sorted(CORPORA)))


def test_corpus_protocol_needs_two_corpora(index):
    one = index[index["corpus"] == "ravdess"]
    with pytest.raises(ParamsError) as info:
        fold_parts(one, _split("corpus"))
    assert "split.protocol" in str(info.value) and "ravdess" in str(info.value)


@pytest.mark.parametrize("protocol", ["speaker", "text", "random"])
def test_train_corpora_matter_only_to_the_corpus_protocol(index, protocol):
    plain = fold_parts(index, _split(protocol))
    restricted = fold_parts(index, _split(protocol, train_corpora=["tess"]))
    assert list(plain) == list(restricted)
    for name in plain:
        np.testing.assert_array_equal(plain[name], restricted[name])


# --- text -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 42])
def test_text_protocol_holds_out_whole_texts_of_every_corpus(index, seed):
    folds = fold_parts(index, _split("text", seed=seed))
    assert list(folds) == ["text"]
    parts = folds["text"]
    for corpus, (speakers, texts) in CORPORA.items():
        rows = (index["corpus"] == corpus).to_numpy()
        held = set(index.loc[rows & (parts == TEST), "text"])
        assert len(held) == max(1, _share(0.2, len(texts))), corpus  # 2 of 10, 1 of 2, 1 of 3
        # a held-out text is held out whole, for every speaker and class; no other text is tested
        np.testing.assert_array_equal(parts[rows] == TEST, index.loc[rows, "text"].isin(held).to_numpy())
        assert set(index.loc[rows & (parts == TEST), "speaker"]) == {f"{corpus}/{s}" for s in speakers}
        assert set(index.loc[rows & (parts == TEST), "emotion"]) == set(CLASSES)
        # validation: whole texts too, none of them tested or trained
        val = set(index.loc[rows & (parts == VALIDATION), "text"])
        train = set(index.loc[rows & (parts == TRAIN), "text"])
        assert train and not held & (val | train) and not val & train, corpus


def test_held_out_texts_is_per_corpus():
    """The same text name in two corpora is two texts: holding one out does not take the other."""
    shared = make_index({"tess": (("OAF",), ("a", "b", "c", "d")), "emovo": (("f1",), ("a", "b", "c", "d"))})
    mask = held_out_texts(shared, 0.25, 42, "split.test_fraction")
    for corpus in ("tess", "emovo"):
        rows = shared["corpus"] == corpus
        assert shared.loc[rows & mask, "text"].nunique() == 1
    assert set(shared.loc[mask, "corpus"]) == {"tess", "emovo"}


def test_a_corpus_with_one_text_is_never_held_out():
    mixed = make_index({"tess": (("OAF", "YAF"), ("a", "b", "c", "d", "e")), "emovo": (("f1", "m1"), ("only",))})
    parts = fold_parts(mixed, _split("text"))["text"]
    assert _values(mixed, parts, TEST, "corpus") == {"tess"}
    assert (parts[(mixed["corpus"] == "emovo").to_numpy()] != TEST).all()


def test_text_protocol_needs_a_corpus_with_two_texts():
    single = make_index({"tess": (("OAF", "YAF"), ("a",)), "emovo": (("f1",), ("b",))})
    with pytest.raises(ParamsError, match="split.test_fraction"):
        fold_parts(single, _split("text"))


def test_text_protocol_needs_training_texts():
    few = make_index({"tess": (("OAF", "YAF"), ("a", "b"))})
    with pytest.raises(ParamsError, match="split.test_fraction"):
        fold_parts(few, _split("text", test_fraction=0.8))


# --- text: texts spoken in a single emotion ---------------------------------------------------------


def _old_held_out_texts(index: pd.DataFrame, fraction: float, seed: int) -> np.ndarray:
    """held_out_texts before texts spoken in a single emotion were kept in training (the reference)."""
    mask = np.zeros(len(index), dtype=bool)
    rng = np.random.default_rng(seed)
    for _, rows in index.groupby("corpus", sort=True):
        texts = np.array(sorted(rows["text"].unique()))
        count = max(1, _share(fraction, len(texts))) if len(texts) > 1 else 0
        mask[rows.index[rows["text"].isin(rng.permutation(texts)[:count])].to_numpy()] = True
    return mask


# what the text protocol held out of make_index() before the rule (seed -> part -> corpus -> texts)
BEFORE_THE_RULE = {
    0: {TEST: {"emovo": ["l1"], "ravdess": ["kids"], "tess": ["w02", "w08"]},
        VALIDATION: {"emovo": ["b1"], "ravdess": [], "tess": ["w03", "w05"]}},
    42: {TEST: {"emovo": ["l1"], "ravdess": ["dogs"], "tess": ["w00", "w07"]},
         VALIDATION: {"emovo": ["b2"], "ravdess": [], "tess": ["w01", "w04"]}},
}


@pytest.mark.parametrize("seed", sorted(BEFORE_THE_RULE))
def test_corpora_whose_texts_are_spoken_in_several_emotions_split_as_before(index, seed):
    """TESS, RAVDESS, EMOVO: every text in every emotion, so the rule changes nothing, row for row."""
    assert single_emotion_texts(index).empty and single_emotion_note(index) == ""
    parts = fold_parts(index, _split("text", seed=seed))["text"]
    for part, corpora in BEFORE_THE_RULE[seed].items():
        for corpus, texts in corpora.items():
            rows = (index["corpus"] == corpus).to_numpy() & (parts == part)
            assert sorted(index.loc[rows, "text"].unique()) == texts, (part, corpus)
    for fraction in (0.1, 0.2, 0.3, 0.5):
        np.testing.assert_array_equal(held_out_texts(index, fraction, seed, "k"), _old_held_out_texts(index, fraction, seed))
        pool = index[parts != TEST].reset_index(drop=True)
        np.testing.assert_array_equal(held_out_texts(pool, fraction, seed, "k"), _old_held_out_texts(pool, fraction, seed))


ASED_LIKE = ("angry", "fear", "happy", "neutral", "sad")


def _ased_like(speakers=("01", "02", "03", "04")) -> pd.DataFrame:
    """Two common sentences in every emotion, five emotion-specific ones per emotion (as ASED)."""
    rows = []
    for number, emotion in enumerate(ASED_LIKE, 1):
        for speaker in speakers:
            for text in ["01", "02", *(f"{number:02d}-{s:02d}" for s in range(3, 8))]:
                rows += [{"file": f"ased/{number}/{speaker}-{text}-{r}.opus", "corpus": "ased", "speaker": f"ased/{speaker}",
                          "text": text, "emotion": emotion} for r in (1, 2)]
    return pd.DataFrame(rows)


def test_single_emotion_texts_counts_texts_and_clips_per_corpus(index):
    mixed = pd.concat([index, _ased_like()], ignore_index=True)
    kept = single_emotion_texts(mixed)
    assert kept.to_dict("records") == [{"corpus": "ased", "texts": 25, "clips": 25 * 4 * 2}]
    assert single_emotion_note(mixed) == (
        "split: texts spoken in a single emotion stay in training, never held out (ased: 25 texts, 200 clips)"
    )


@pytest.mark.parametrize("seed", [0, 1, 42])
def test_texts_spoken_in_a_single_emotion_are_never_held_out(index, seed):
    mixed = pd.concat([index, _ased_like()], ignore_index=True).sample(frac=1.0, random_state=seed).reset_index(drop=True)
    parts = fold_parts(mixed, _split("text", seed=seed))["text"]
    ased = (mixed["corpus"] == "ased").to_numpy()
    specific = ased & mixed["text"].str.contains("-").to_numpy()
    assert (parts[specific] == TRAIN).all()  # never tested nor validated
    assert set(mixed.loc[ased & (parts == TEST), "text"]) in ({"01"}, {"02"})  # 1 of the 2 common sentences
    assert set(mixed.loc[ased & (parts == TEST), "emotion"]) == set(ASED_LIKE)
    assert not (ased & (parts == VALIDATION)).any()  # the other common sentence is ASED's only one left to validate
    for corpus in CORPORA:  # the other corpora still hold out texts of their own
        rows = (mixed["corpus"] == corpus).to_numpy()
        assert {TRAIN, TEST} <= set(parts[rows]), corpus


def test_held_out_texts_never_masks_a_single_emotion_text():
    ased = _ased_like()
    for seed in range(5):
        mask = held_out_texts(ased, 0.5, seed, "split.test_fraction")
        assert set(ased.loc[mask, "text"]) in ({"01"}, {"02"})


def test_a_corpus_whose_texts_are_all_single_emotion_cannot_be_held_out():
    only = _ased_like()
    only = only[only["text"].str.contains("-")]
    with pytest.raises(ParamsError, match="several emotions"):
        held_out_texts(only, 0.2, 0, "split.test_fraction")
    # alone, ASED's two common sentences give a test text but none to validate on: the error says so
    with pytest.raises(ParamsError, match="split.validation_fraction.*several emotions"):
        fold_parts(_ased_like(), _split("text"))


# --- random -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("test_fraction", [0.2, 0.3])
def test_random_protocol_share_stratified_by_corpus_and_class(index, test_fraction):
    folds = fold_parts(index, _split("random", test_fraction=test_fraction))
    assert list(folds) == ["random"]
    parts = folds["random"]
    test = parts == TEST
    assert abs(test.sum() - test_fraction * len(index)) <= 1
    strata = index["corpus"] + "|" + index["emotion"]
    for stratum, rows in index.groupby(strata):
        got = test[rows.index].sum()
        assert abs(got - test_fraction * len(rows)) <= 1, stratum
    # random mixes speakers and texts across the parts
    assert _values(index, parts, TEST, "speaker") & _values(index, parts, TRAIN, "speaker")
    assert _values(index, parts, TEST, "text") & _values(index, parts, TRAIN, "text")


@pytest.mark.parametrize("seed", [0, 42])
def test_random_validation_is_a_stratified_share_of_training_clips(index, seed):
    parts = fold_parts(index, _split("random", seed=seed))["random"]
    rest, val = parts != TEST, parts == VALIDATION
    assert abs(val.sum() - 0.2 * rest.sum()) <= 1
    assert set(index.loc[val, "corpus"] + "|" + index.loc[val, "emotion"]) == set(index["corpus"] + "|" + index["emotion"])


def _tiny(per_stratum: int) -> pd.DataFrame:
    rows = [
        {"file": f"{c}/{i}_{e}.wav", "corpus": c, "speaker": f"{c}/s{i % 2}", "text": f"t{i}", "emotion": e}
        for c in ("tess", "emovo") for e in CLASSES for i in range(per_stratum)
    ]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("seed", [0, 1, 42])
def test_tiny_data_keeps_every_stratum_in_every_part(seed):
    tiny = _tiny(3)  # 42 clips: 20% would be 8 test clips, fewer than the 14 strata
    parts = fold_parts(tiny, _split("random", seed=seed))["random"]
    strata = set(tiny["corpus"] + "|" + tiny["emotion"])
    for part in (TRAIN, VALIDATION, TEST):
        assert set(tiny.loc[parts == part, "corpus"] + "|" + tiny.loc[parts == part, "emotion"]) == strata, part


def test_too_tiny_data_is_a_params_error_naming_the_key():
    with pytest.raises(ParamsError, match="too few") as info:
        fold_parts(_tiny(2), _split("random"))
    assert "split.validation_fraction" in str(info.value) or "split.test_fraction" in str(info.value)


# --- the building blocks ----------------------------------------------------------------------------


def test_fold_tests_names_the_pool_each_fold_may_learn_from(index):
    tests = fold_tests(index, _split("corpus", train_corpora=["emovo"]))
    assert list(tests) == ["test_ravdess", "test_tess"]
    for name, (test, pool) in tests.items():
        np.testing.assert_array_equal(test, (index["corpus"] == name.removeprefix("test_")).to_numpy())
        np.testing.assert_array_equal(pool, (index["corpus"] == "emovo").to_numpy())


def test_assign_parts_never_trains_on_test_rows(index):
    test = (index["corpus"] == "tess").to_numpy()
    everyone = np.ones(len(index), dtype=bool)
    parts = assign_parts(index, test, everyone, _split("speaker"))
    np.testing.assert_array_equal(parts == TEST, test)
    assert set(parts[~test]) == {TRAIN, VALIDATION}


def test_assign_parts_needs_rows_to_train_on(index):
    test = (index["corpus"] == "tess").to_numpy()
    with pytest.raises(ParamsError, match="no clips to train on"):
        assign_parts(index, test, test, _split("corpus"))
