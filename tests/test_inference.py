"""Scoring clips with a saved model (``ser.inference``): parity of the served ONNX graph with its
members (Keras, scikit-learn), no train/serve skew, windows of long clips, the errors users see,
model directories and the metrics shown with them.

The model is ``served_model`` (conftest): a small seeded ensemble, its network untrained, so these
tests compare computation paths, never accuracy."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from conftest import REPO_CLASSES, SERVED_FOLDS, SERVED_FUNCTIONALS, SERVED_INPUTS, SERVED_MEMBERS, make_tone

from ser import features as ser_features
from ser.audio import AudioError, load_window, normalize_level
from ser.functionals import functionals
from ser.inference import (
    SILENCE_DBFS,
    ClipFeatures,
    ModelError,
    Prediction,
    Predictor,
    UndecodableAudio,
    Window,
    clip_duration,
    load_windows,
    scored_metrics,
    window_starts,
)
from ser.inputs import UTTERANCE, input_kind, input_name, model_inputs, speaker_stats
from ser.params import AudioParams
from ser.paths import FOLD_MODEL_DIR, METRICS, MODEL_DIR

TESS_CLIPS = (
    "YAF_sad/YAF_back_sad.flac",
    "YAF_angry/YAF_back_angry.flac",
    "YAF_happy/YAF_back_happy.flac",
    "OAF_neutral/OAF_back_neutral.flac",
    "OAF_fear/OAF_back_fear.flac",
)
ATOL = 1e-4
EMOTIONS = REPO_CLASSES


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def predictor(served_model_dir) -> Predictor:
    return Predictor(served_model_dir)


@pytest.fixture(scope="session")
def keras_model(served_model):
    """The served model's network, loaded back from its Keras file."""
    import keras

    import ser.models.networks  # noqa: F401 - registers the custom layers
    from ser.assembly import keras_file

    return keras.models.load_model(served_model.model_dir / keras_file(served_model.network.name))


@pytest.fixture(scope="session")
def synthetic_clips(tmp_path_factory, write_tone) -> list[Path]:
    """Single-window synthetic clips: several voices, lengths, rates and channel counts."""
    folder = tmp_path_factory.mktemp("synthetic")
    specs = [
        dict(sr=22050, seconds=2.0, seed=1, f0=110.0),
        dict(sr=24414, seconds=1.2, seed=2, f0=240.0),
        dict(sr=16000, seconds=3.5, seed=3, f0=150.0),
        dict(sr=44100, seconds=2.6, seed=4, f0=300.0, channels=2),
        dict(sr=8000, seconds=0.9, seed=5, f0=90.0),
    ]
    return [write_tone(folder / f"clip{k}.wav", **spec) for k, spec in enumerate(specs)]


@pytest.fixture(scope="session")
def long_clip(tmp_path_factory, write_tone, audio_params) -> Path:
    """10 s at the model's rate: four windows starting at 0.5, 3.5, 6.5 and 7.0 s."""
    return write_tone(tmp_path_factory.mktemp("long") / "long.wav", sr=audio_params.sr, seconds=10.0, seed=7, f0=160.0)


@pytest.fixture(scope="session")
def tess_clips(tess_dir) -> list[Path]:
    return [tess_dir / name for name in TESS_CLIPS]


def _shrunk(own: tuple[np.ndarray, np.ndarray], n: int, reference: tuple[np.ndarray, np.ndarray], shrinkage: float):
    """A speaker's statistics from ``n`` windows, ``n / (n + shrinkage)`` their own and the rest the reference's."""
    weight = n / (n + shrinkage)
    mean = weight * own[0] + (1 - weight) * reference[0]
    std = np.sqrt(weight * own[1] ** 2 + (1 - weight) * reference[1] ** 2)
    return mean, std


def _member_outputs(served_model, keras_model, predictor: Predictor, clips: list[ClipFeatures],
                    speakers: list[str]) -> dict[str, np.ndarray]:
    """What each member, the Keras network or a scikit-learn classifier, says of every window of ``clips``
    (clip k spoken by ``speakers[k]``), normalized as the pipeline does, by the input it reads. A
    classifier reads the functionals of its own set (``logreg:compare``: ComParE's)."""
    values = np.concatenate([clip.values for clip in clips])
    valid = np.concatenate([clip.valid_frames for clip in clips])
    groups = np.repeat(speakers, [len(clip.starts) for clip in clips])
    outputs = {}
    for member in predictor.params.member_params():
        kind, name = input_kind(member.arch), input_name(member)
        described = np.concatenate([clip.functionals[member.functionals] for clip in clips]) if kind == UTTERANCE else None
        own = speaker_stats(values, valid, groups, member.deltas, kind, described)
        stats = {speaker: _shrunk(own[speaker], int((groups == speaker).sum()), predictor.reference[name], member.shrinkage)
                 for speaker in own}
        inputs = model_inputs(values, valid, groups, member, stats, described)
        if kind == UTTERANCE:
            outputs[name] = served_model.classifiers[name].predict_proba(inputs)
        else:
            outputs[name] = np.asarray(keras_model(inputs, training=False))
    return outputs


def _member_probabilities(served_model, keras_model, predictor: Predictor, clips: list[ClipFeatures],
                          speakers: list[str]) -> np.ndarray:
    """The members' probabilities (:func:`_member_outputs`) averaged: the served graph's at temperature 1."""
    outputs = _member_outputs(served_model, keras_model, predictor, clips, speakers)
    assert list(outputs) == list(SERVED_INPUTS)
    return np.mean(list(outputs.values()), axis=0)


def _alone(clips: list[ClipFeatures]) -> list[str]:
    """Each clip its own speaker, as ``Predictor.predict`` scores clips by default."""
    return [f"clip{k}" for k in range(len(clips))]


def _copy_model(served_model_dir: Path, destination: Path) -> Path:
    shutil.copytree(served_model_dir, destination)
    return destination


def _scaled_tone(path: Path, peak: float, sr: int = 22050, seconds: float = 2.0, subtype: str = "FLOAT") -> Path:
    data = make_tone(sr, seconds, seed=11)
    sf.write(str(path), data / np.max(np.abs(data)) * peak, sr, subtype=subtype)
    return path


# ---------------------------------------------------------------- ONNX export parity


def test_served_model_uses_speaker_normalization_with_reference_stats(predictor):
    """The parity tests below exercise the path real models take (an ensemble of utterance classifiers
    on two functional sets and a bigru, deltas, speaker statistics shrunk toward the reference)."""
    assert predictor.params.arch == "ensemble"
    assert predictor.params.members == list(SERVED_MEMBERS)
    readers = [(m.arch, m.functionals) for m in predictor.params.member_params() if m.arch == "logreg"]
    assert readers == [("logreg", "egemaps"), ("logreg", "compare")]
    assert predictor.input_names == set(SERVED_INPUTS) == {"utterance_egemaps", "utterance_compare", "frames"}
    assert predictor.features.functionals == list(SERVED_FUNCTIONALS)
    assert predictor.params.functional_sets() == set(SERVED_FUNCTIONALS)
    assert predictor.params.normalize == "speaker"
    assert predictor.params.deltas >= 1
    assert predictor.params.shrinkage > 0
    assert set(predictor.reference) == set(SERVED_INPUTS)
    assert predictor.meta["temperature"] == 1.0
    assert predictor.classes == EMOTIONS


@pytest.fixture(params=["tess", "synthetic"])
def corpus(request) -> list[Path]:
    """Real TESS clips (skipped without the corpus) or synthetic ones."""
    return request.getfixturevalue(f"{request.param}_clips")


@pytest.mark.parametrize("adapt", [False, True], ids=["alone", "adapt"])
def test_onnx_probabilities_equal_keras_and_scikit_learn(served_model, predictor, keras_model, corpus, adapt):
    clips = [predictor.clip_features(path) for path in corpus]
    assert all(len(clip.starts) == 1 for clip in clips)
    predictions = predictor.predict(clips, adapt=adapt)
    speakers = ["everyone"] * len(clips) if adapt else _alone(clips)
    expected = _member_probabilities(served_model, keras_model, predictor, clips, speakers)

    got = np.stack([p.probabilities for p in predictions])
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)
    assert [p.name for p in predictions] == [str(path) for path in corpus]
    # the clips are told apart, so agreement within ATOL is not a given
    assert np.ptp(got, axis=0).max() > 10 * ATOL


def test_adapt_uses_the_clips_own_statistics(predictor, corpus):
    clips = [predictor.clip_features(path) for path in corpus]
    alone = np.stack([p.probabilities for p in predictor.predict(clips)])
    adapted = np.stack([p.probabilities for p in predictor.predict(clips, adapt=True)])
    assert np.abs(alone - adapted).max() > 10 * ATOL
    # adapting is over the clips scored together: one clip more changes the others' results
    fewer = np.stack([p.probabilities for p in predictor.predict(clips[:-1], adapt=True)])
    assert np.abs(fewer - adapted[:-1]).max() > 0
    # by default a clip is its own speaker: its result does not depend on the company it keeps
    np.testing.assert_allclose(predictor.predict(clips[:1])[0].probabilities, alone[0], atol=1e-6)
    np.testing.assert_allclose(predictor.predict(clips[::-1])[-1].probabilities, alone[0], atol=1e-6)


def test_onnx_equals_keras_on_every_window_of_a_long_clip(served_model, predictor, keras_model, long_clip):
    """The windows of one clip are one speaker's: normalized with statistics from all of them."""
    clip = predictor.clip_features(long_clip)
    prediction = predictor.predict([clip])[0]
    expected = _member_probabilities(served_model, keras_model, predictor, [clip], _alone([clip]))
    assert expected.shape == (4, len(EMOTIONS))
    np.testing.assert_allclose(np.stack([w.probabilities for w in prediction.windows]), expected, atol=ATOL, rtol=0)
    np.testing.assert_allclose(prediction.probabilities, expected.mean(axis=0), atol=ATOL, rtol=0)


def test_members_reading_other_sets_say_other_things(served_model, predictor, keras_model, synthetic_clips):
    """The two classifiers read other functionals (and differ in width): the served mean is of three
    different opinions, so the parity above checks that each member got its own set."""
    clips = [predictor.clip_features(path) for path in synthetic_clips]
    outputs = _member_outputs(served_model, keras_model, predictor, clips, _alone(clips))
    assert np.abs(outputs["utterance_egemaps"] - outputs["utterance_compare"]).max() > 10 * ATOL
    widths = {name: classifier.n_features_in_ for name, classifier in served_model.classifiers.items()}
    assert widths["utterance_compare"] - widths["utterance_egemaps"] == 6373 - 88


def _save_classifiers(served_model, model_dir: Path, model: dict) -> Path:
    """The served model's classifiers that ``model`` (changes to its model section) has as members, saved
    as the train stage saves a model: a graph of an utterance input per set read, and no network."""
    from ser import assembly
    from ser.inference import saved_reference_stats
    from ser.models import linear
    from ser.params import ModelParams

    meta = json.loads((served_model.model_dir / "meta.json").read_text())
    params = ModelParams(**{**meta["model"], **model})
    members = []
    for member in params.member_params():
        name = input_name(member)
        classifier = served_model.classifiers[name]
        graph = linear.export_onnx(classifier, classifier.n_features_in_, name)
        members.append(assembly.Member(member, graph, np.zeros((0, len(EMOTIONS)))))
    split = pd.read_csv(served_model.model_dir / "split.csv")
    names = {input_name(member) for member in params.member_params()}
    reference = {name: stats for name, stats in saved_reference_stats(meta).items() if name in names}
    assembly.save_model(model_dir, members, 1.0, split.drop(columns="part"), split["part"].to_numpy(),
                        {**meta, "model": params.model_dump()}, reference)
    return model_dir


@pytest.mark.parametrize("adapt", [False, True], ids=["alone", "adapt"])
def test_two_classifiers_on_other_sets_serve_the_mean_of_their_pipelines(served_model, tmp_path, synthetic_clips, adapt):
    """An ensemble of ``[logreg, 'logreg:compare']`` (model.functionals egemaps): each pipeline reads its
    own set, and the graph serves their mean."""
    model_dir = _save_classifiers(served_model, tmp_path / MODEL_DIR, {"members": ["logreg", "logreg:compare"], "functionals": "egemaps"})
    predictor = Predictor(model_dir)
    assert predictor.input_names == {"utterance_egemaps", "utterance_compare"}
    assert not (model_dir / "bigru.keras").exists()
    clips = [predictor.clip_features(path) for path in synthetic_clips]
    assert sorted(clips[0].functionals) == ["compare", "egemaps"]
    speakers = ["everyone"] * len(clips) if adapt else _alone(clips)
    outputs = _member_outputs(served_model, None, predictor, clips, speakers)
    assert list(outputs) == ["utterance_egemaps", "utterance_compare"]
    assert np.abs(outputs["utterance_egemaps"] - outputs["utterance_compare"]).max() > 10 * ATOL  # a mean of two opinions
    got = np.stack([p.probabilities for p in predictor.predict(clips, adapt=adapt)])
    np.testing.assert_allclose(got, np.mean([outputs["utterance_egemaps"], outputs["utterance_compare"]], axis=0), atol=ATOL, rtol=0)


@pytest.mark.parametrize("kind", ["egemaps", "compare"])
def test_a_lone_classifier_computes_and_reads_only_its_set(served_model, tmp_path, synthetic_clips, kind):
    """A served clip is described by the set the model reads, not by every set featurize computed."""
    model_dir = _save_classifiers(served_model, tmp_path / MODEL_DIR, {"arch": "logreg", "members": [], "functionals": kind})
    predictor = Predictor(model_dir)
    assert predictor.features.functionals == list(SERVED_FUNCTIONALS)
    assert predictor.input_names == {f"utterance_{kind}"}
    clips = [predictor.clip_features(path) for path in synthetic_clips]
    assert all(list(clip.functionals) == [kind] for clip in clips)
    outputs = _member_outputs(served_model, None, predictor, clips, _alone(clips))
    got = np.stack([p.probabilities for p in predictor.predict(clips)])
    np.testing.assert_allclose(got, outputs[f"utterance_{kind}"], atol=ATOL, rtol=0)


def test_predicting_no_clips_returns_nothing(predictor):
    assert predictor.predict([]) == []
    assert predictor.predict([], adapt=True) == []


# ---------------------------------------------------------------- no train/serve skew


def _assert_featurized_functionals(served: ClipFeatures, path: Path, predictor: Predictor) -> None:
    """A clip's served functionals are those the featurize stage computes, set by set: of the clip's
    window, for each set the model's classifiers read."""
    window = normalize_level(load_window(path, predictor.audio), predictor.audio.sr, predictor.audio.level_dbfs)
    assert sorted(served.functionals) == sorted(predictor.params.functional_sets()) == sorted(SERVED_FUNCTIONALS)
    for kind, values in served.functionals.items():
        np.testing.assert_array_equal(values, [functionals(window, predictor.audio.sr, kind)])


def test_clip_features_equal_the_featurize_stage_on_tess_clips(predictor, tess_clips):
    for path in tess_clips:
        served = predictor.clip_features(path)
        values, valid = ser_features.clip_features(path, predictor.audio, predictor.features)
        assert served.starts == [predictor.audio.offset]
        np.testing.assert_array_equal(served.values[0], values)
        assert served.valid_frames.tolist() == [valid]
        _assert_featurized_functionals(served, path, predictor)
        assert served.duration == pytest.approx(sf.info(str(path)).duration)


def test_clip_features_equal_the_featurize_stage_on_synthetic_clips(predictor, synthetic_clips):
    for path in synthetic_clips:
        served = predictor.clip_features(path)
        values, valid = ser_features.clip_features(path, predictor.audio, predictor.features)
        np.testing.assert_array_equal(served.values[0], values)
        assert served.valid_frames.tolist() == [valid]
        _assert_featurized_functionals(served, path, predictor)


def test_clip_exactly_one_window_long_is_featurized_as_in_training(predictor, tmp_path, write_tone):
    audio = predictor.audio
    path = write_tone(tmp_path / "exact.wav", sr=audio.sr, seconds=audio.offset + audio.duration)
    served = predictor.clip_features(path)
    values, valid = ser_features.clip_features(path, audio, predictor.features)
    assert served.starts == [audio.offset]
    np.testing.assert_array_equal(served.values[0], values)
    assert served.valid_frames.tolist() == [valid]


def test_in_memory_file_scores_like_its_path(predictor, corpus, long_clip):
    for path in [corpus[0], corpus[-1], long_clip]:
        from_path = predictor.clip_features(path)
        from_memory = predictor.clip_features(io.BytesIO(path.read_bytes()), name="upload.wav")
        assert from_memory.name == "upload.wav"
        assert from_memory.starts == from_path.starts
        assert from_memory.duration == from_path.duration
        np.testing.assert_array_equal(from_memory.values, from_path.values)
        np.testing.assert_array_equal(from_memory.valid_frames, from_path.valid_frames)
        assert list(from_memory.functionals) == list(from_path.functionals)
        for kind in from_path.functionals:
            np.testing.assert_array_equal(from_memory.functionals[kind], from_path.functionals[kind])
        p_path = predictor.predict_file(path).probabilities
        p_memory = predictor.predict_file(io.BytesIO(path.read_bytes()), name="upload.wav").probabilities
        np.testing.assert_array_equal(p_memory, p_path)


# ---------------------------------------------------------------- windows


def _audio(offset: float, duration: float) -> AudioParams:
    return AudioParams(sr=22050, offset=offset, duration=duration, res_type="soxr_hq")


def test_short_clip_is_one_window_at_the_offset(audio_params):
    for duration in (0.0, 0.3, 1.0, 2.5, 3.4999):
        assert window_starts(duration, audio_params) == [audio_params.offset]


def test_clip_exactly_offset_plus_duration_is_one_window(audio_params):
    assert window_starts(audio_params.offset + audio_params.duration, audio_params) == [audio_params.offset]


def test_long_clip_windows_follow_the_offset_and_the_last_ends_at_the_clip_end(audio_params):
    assert audio_params.offset == 0.5 and audio_params.duration == 3.0
    assert window_starts(3.6, audio_params) == pytest.approx([0.5, 0.6])
    assert window_starts(6.5, audio_params) == pytest.approx([0.5, 3.5])
    assert window_starts(6.6, audio_params) == pytest.approx([0.5, 3.5, 3.6])
    assert window_starts(10.0, audio_params) == pytest.approx([0.5, 3.5, 6.5, 7.0])


@pytest.mark.parametrize("offset, duration", [(0.5, 3.0), (0.0, 1.0), (0.2, 1.0), (0.1, 0.3), (0.3, 1.5), (1.0, 0.25)])
def test_windows_cover_the_clip_without_passing_its_end(offset, duration):
    audio = _audio(offset, duration)
    for sr in (8000, 16000, 22050, 24414, 44100, 48000):
        for frames in np.unique(np.linspace(1, sr * (offset + 12 * duration), 157).astype(int)):
            length = frames / sr
            starts = window_starts(length, audio)
            assert starts[0] == offset
            if length <= offset + duration:
                assert starts == [offset]
                continue
            assert all(b > a for a, b in zip(starts, starts[1:])), (sr, frames, starts)
            assert all(b - a <= duration + 1e-9 for a, b in zip(starts, starts[1:])), (sr, frames, starts)
            assert all(a == pytest.approx(offset + k * duration) for k, a in enumerate(starts[:-1]))
            assert starts[-1] + duration == pytest.approx(length, abs=1e-9)
            assert max(starts) + duration <= length + 1e-9


@pytest.mark.parametrize("offset, duration", [(0.5, 3.0), (0.0, 1.0), (0.2, 1.0), (0.1, 0.3), (0.3, 1.5), (0.0, 0.1)])
def test_clip_of_a_whole_number_of_windows_has_that_many_windows(offset, duration):
    """A clip lasting offset + k windows (as frames / rate) is cut into exactly k windows, none twice."""
    audio = _audio(offset, duration)
    for sr in (8000, 11025, 16000, 22050, 24000, 44100, 48000):
        for k in range(1, 60):
            frames = round((offset + k * duration) * sr)
            if abs(frames / sr - (offset + k * duration)) > 1e-9:
                continue  # not a whole number of samples
            starts = window_starts(frames / sr, audio)
            assert len(starts) == k, (sr, k, frames, starts[-2:])


# ---------------------------------------------------------------- long clips


def test_long_clip_is_the_mean_of_its_windows(predictor, long_clip):
    prediction = predictor.predict_file(long_clip)
    assert prediction.duration == pytest.approx(10.0)
    assert [w.start for w in prediction.windows] == pytest.approx([0.5, 3.5, 6.5, 7.0])
    assert [w.end for w in prediction.windows] == pytest.approx([3.5, 6.5, 9.5, 10.0])
    windows = np.stack([w.probabilities for w in prediction.windows])
    np.testing.assert_allclose(prediction.probabilities, windows.mean(axis=0), rtol=0, atol=1e-7)
    np.testing.assert_allclose(windows.sum(axis=1), 1.0, atol=1e-5)
    assert np.ptp(windows, axis=0).max() > 0  # the windows hold different audio


def test_each_window_scores_as_that_stretch_of_audio(predictor, long_clip, tmp_path):
    """Window k of a long clip = a clip holding the offset's lead-in and that window. The windows of a
    clip are one speaker's, so the pieces are scored together as one speaker: the same audio, the
    same statistics."""
    audio = predictor.audio
    samples, sr = sf.read(str(long_clip), dtype="int16")
    assert sr == audio.sr
    prediction = predictor.predict_file(long_clip)
    pieces = []
    for k, window in enumerate(prediction.windows):
        begin = round((window.start - audio.offset) * sr)
        piece = tmp_path / f"piece{k}.wav"
        sf.write(str(piece), samples[begin : round(window.end * sr)], sr, subtype="PCM_16")
        pieces.append(predictor.clip_features(piece))
        assert len(pieces[-1].starts) == 1
    scored = predictor.predict(pieces, speakers=["long"] * len(pieces))
    for window, piece in zip(prediction.windows, scored):
        np.testing.assert_allclose(window.probabilities, piece.probabilities, atol=1e-5, rtol=0)
    # scored alone, each piece is normalized with its own statistics instead: not the clip's
    alone = np.stack([p.probabilities for p in predictor.predict(pieces)])
    assert np.abs(alone - np.stack([w.probabilities for w in prediction.windows])).max() > 10 * ATOL


def test_long_clip_to_dict_lists_its_windows(predictor, long_clip):
    prediction = predictor.predict_file(long_clip, name="long.wav")
    result = prediction.to_dict(per_window=True)
    assert result["file"] == "long.wav"
    assert result["duration"] == 10.0
    assert [(w["start"], w["end"]) for w in result["windows"]] == [(0.5, 3.5), (3.5, 6.5), (6.5, 9.5), (7.0, 10.0)]
    for window, item in zip(prediction.windows, result["windows"]):
        assert list(item["probabilities"]) == list(EMOTIONS)
        assert list(item["probabilities"].values()) == pytest.approx(window.probabilities.tolist(), abs=1e-6)
    json.dumps(result)  # JSON-ready
    assert "windows" not in prediction.to_dict()


def test_to_dict_top_keeps_the_most_probable_classes_in_order(predictor, long_clip):
    prediction = predictor.predict_file(long_clip)
    result = prediction.to_dict(top=2)
    assert len(result["probabilities"]) == 2
    (first, p1), (second, p2) = result["probabilities"].items()
    assert p1 >= p2
    assert first == prediction.emotion == result["emotion"]
    assert result["confidence"] == pytest.approx(prediction.confidence, abs=1e-6) == pytest.approx(p1, abs=1e-6)
    ranked = sorted(zip(EMOTIONS, prediction.probabilities), key=lambda item: -item[1])
    assert second == ranked[1][0]
    full = prediction.to_dict()
    assert sorted(full["probabilities"]) == sorted(EMOTIONS)
    assert sum(full["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)


def test_prediction_top_and_emotion():
    probabilities = np.array([0.1, 0.05, 0.3, 0.05, 0.2, 0.0, 0.3])
    classes = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
    prediction = Prediction("x.wav", 2.0, classes, probabilities, [Window(0.5, 2.0, probabilities)])
    assert prediction.emotion == "fear"  # the first of a tie
    assert prediction.confidence == pytest.approx(0.3)
    assert prediction.top(3) == [("fear", 0.3), ("surprise", 0.3), ("neutral", 0.2)]
    assert [label for label, _ in prediction.top()] == ["fear", "surprise", "neutral", "angry", "disgust", "happy", "sad"]
    assert prediction.top(1) == [("fear", 0.3)]


# ---------------------------------------------------------------- errors


def test_non_audio_bytes_are_undecodable(predictor, tmp_path):
    path = tmp_path / "notes.wav"
    path.write_bytes(b"this is not a sound file, only some text\n" * 50)
    with pytest.raises(UndecodableAudio, match="notes.wav.*cannot decode"):
        predictor.clip_features(path)
    with pytest.raises(UndecodableAudio, match="upload.ogg"):
        predictor.clip_features(io.BytesIO(path.read_bytes()), name="upload.ogg")
    assert issubclass(UndecodableAudio, AudioError)


def test_empty_clip_is_refused(predictor, tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(str(path), np.zeros(0, dtype=np.float32), 22050, subtype="PCM_16")
    assert sf.info(str(path)).frames == 0
    with pytest.raises(AudioError, match="empty.wav.*empty") as caught:
        predictor.clip_features(path)
    assert not isinstance(caught.value, UndecodableAudio)
    with pytest.raises(AudioError, match="empty"):
        clip_duration(path, "empty.wav")


def test_a_header_claiming_years_is_refused_before_its_windows_are_listed(audio_params):
    """What fuzzing found: an MP3 whose first frame says 154 million seconds made a list of 51 million window
    starts, gigabytes, before any window was read (MemoryError, or the machine out of memory)."""
    buffer = io.BytesIO()
    sf.write(buffer, make_tone(16000, 1.2), 16000, format="MP3", subtype="MPEG_LAYER_III")
    data = bytearray(buffer.getvalue())
    data[18:22] = b"\xff" * 4
    assert sf.info(io.BytesIO(data)).duration > 1e8
    with pytest.raises(AudioError, match=r"^long\.mp3: no audio samples at \d+\.\d+ s, though its header says \d+\.\d+ s \(cut short"):
        load_windows(io.BytesIO(data), audio_params, "long.mp3")


def test_digital_silence_is_refused(predictor, tmp_path):
    path = tmp_path / "silence.wav"
    sf.write(str(path), np.zeros(22050 * 2), 22050, subtype="PCM_16")
    with pytest.raises(AudioError, match=r"silence.wav.*silent \(digital silence\)"):
        predictor.clip_features(path)


def test_very_quiet_clip_is_refused_as_silent(predictor, tmp_path):
    peak = 10 ** ((SILENCE_DBFS - 10) / 20)
    path = _scaled_tone(tmp_path / "whisper.wav", peak)
    with pytest.raises(AudioError, match=r"whisper.wav.*silent \(peak -9\d dBFS\)"):
        predictor.clip_features(path)


def test_quiet_but_audible_clip_is_scored(predictor, tmp_path):
    for subtype in ("FLOAT", "PCM_16"):
        path = _scaled_tone(tmp_path / f"quiet_{subtype}.wav", 10 ** (-60 / 20), subtype=subtype)
        prediction = predictor.predict_file(path)
        assert prediction.probabilities.sum() == pytest.approx(1.0, abs=1e-5)


def test_sound_only_outside_the_windows_counts_as_silent(predictor, tmp_path):
    """Silence is judged on what the model hears: audio before the offset does not count."""
    sr = predictor.audio.sr
    data = np.zeros(sr * 2)
    data[: int(sr * predictor.audio.offset) - 100] = 0.5
    path = tmp_path / "lead_in.wav"
    sf.write(str(path), data, sr, subtype="PCM_16")
    with pytest.raises(AudioError, match="silent"):
        predictor.clip_features(path)


def test_clip_shorter_than_the_offset_is_refused(predictor, tmp_path, write_tone):
    path = write_tone(tmp_path / "blip.wav", sr=22050, seconds=0.3)
    with pytest.raises(AudioError, match=r"blip.wav.*offset") as caught:
        predictor.clip_features(path)
    assert not isinstance(caught.value, UndecodableAudio)


def test_clip_with_nan_samples_is_refused(predictor, tmp_path):
    data = make_tone(22050, 2.0)
    data[30000] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(str(path), data, 22050, subtype="FLOAT")
    with pytest.raises(AudioError, match="nan.wav.*NaN"):
        predictor.clip_features(path)


def test_load_windows_returns_each_window_at_the_model_rate(predictor, long_clip):
    duration, starts, windows = load_windows(long_clip, predictor.audio, "long.wav")
    assert duration == pytest.approx(10.0)
    assert starts == pytest.approx([0.5, 3.5, 6.5, 7.0])
    assert [len(w) for w in windows] == [predictor.audio.n_samples] * 4
    samples, _ = sf.read(str(long_clip), dtype="float32")
    sr = predictor.audio.sr
    for start, window in zip(starts, windows):
        begin = int(start * sr)
        np.testing.assert_array_equal(window, samples[begin : begin + len(window)])


# ---------------------------------------------------------------- formats


@pytest.mark.parametrize(
    "name, sr, channels, subtype, fmt",
    [
        ("narrow.wav", 8000, 1, "PCM_16", None),
        ("cd_stereo.wav", 44100, 2, "PCM_16", None),
        ("studio.flac", 48000, 1, "PCM_24", None),
        ("tess_rate.ogg", 24414, 1, "VORBIS", None),
        ("stereo.ogg", 44100, 2, "VORBIS", None),
        ("mac.aiff", 44100, 1, "PCM_16", "AIFF"),
        ("float.wav", 48000, 2, "FLOAT", None),
        ("double.wav", 22050, 1, "DOUBLE", None),
    ],
)
def test_formats_rates_and_channels_are_scored(predictor, tmp_path, write_tone, name, sr, channels, subtype, fmt):
    path = write_tone(tmp_path / name, sr=sr, seconds=2.5, channels=channels, subtype=subtype, format=fmt)
    prediction = predictor.predict_file(path)
    assert prediction.duration == pytest.approx(2.5, abs=1e-3)
    assert prediction.probabilities.shape == (len(EMOTIONS),)
    assert prediction.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    assert np.all(np.isfinite(prediction.probabilities))
    values, valid = ser_features.clip_features(path, predictor.audio, predictor.features)
    served = predictor.clip_features(path)
    np.testing.assert_array_equal(served.values[0], values)
    assert served.valid_frames.tolist() == [valid]


def test_mp3_is_scored(predictor, tmp_path, write_tone):
    """MP3 through libsndfile; the encoder pads the clip a little, so its length is approximate."""
    path = write_tone(tmp_path / "speech.mp3", sr=22050, seconds=2.5, subtype="MPEG_LAYER_III", format="MP3")
    prediction = predictor.predict_file(path)
    assert prediction.duration == pytest.approx(2.5, abs=0.1)
    assert prediction.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    values, _ = ser_features.clip_features(path, predictor.audio, predictor.features)
    np.testing.assert_array_equal(predictor.clip_features(path).values[0], values)


def test_stereo_is_scored_as_the_mean_of_its_channels(predictor, tmp_path):
    data = make_tone(22050, 2.0, channels=2, seed=3)
    stereo, mono = tmp_path / "stereo.wav", tmp_path / "mono.wav"
    sf.write(str(stereo), data, 22050, subtype="DOUBLE")
    sf.write(str(mono), data.mean(axis=1), 22050, subtype="DOUBLE")
    left = tmp_path / "left.wav"
    sf.write(str(left), data[:, 0], 22050, subtype="DOUBLE")
    np.testing.assert_allclose(
        predictor.clip_features(stereo).values, predictor.clip_features(mono).values, atol=1e-3, rtol=0
    )
    assert np.abs(predictor.clip_features(stereo).values - predictor.clip_features(left).values).max() > 1.0


# ---------------------------------------------------------------- model directories


def test_missing_model_dir_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="dvc"):
        Predictor(tmp_path / "nowhere")


def test_model_dir_without_onnx_is_a_model_error(served_model_dir, tmp_path):
    model_dir = _copy_model(served_model_dir, tmp_path / MODEL_DIR)
    (model_dir / "model.onnx").unlink()
    with pytest.raises(ModelError, match="model.onnx"):
        Predictor(model_dir)


@pytest.mark.parametrize("missing", [None, *SERVED_INPUTS])
def test_speaker_normalized_model_without_reference_stats_is_a_model_error(served_model_dir, tmp_path, missing):
    """No reference statistics at all, or none for one of the graph's inputs (a model saved by an older version)."""
    model_dir = _copy_model(served_model_dir, tmp_path / MODEL_DIR)
    meta = json.loads((model_dir / "meta.json").read_text())
    assert meta["model"]["normalize"] == "speaker"
    if missing is None:
        del meta["reference_stats"]
    else:
        del meta["reference_stats"][missing]
    (model_dir / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="rerun the train stage"):
        Predictor(model_dir)


def test_a_model_whose_graph_inputs_are_not_its_members_is_a_model_error(served_model_dir, tmp_path):
    """meta.json's members read other inputs than the graph has (here the compare classifier is gone)."""
    model_dir = _copy_model(served_model_dir, tmp_path / MODEL_DIR)
    meta = json.loads((model_dir / "meta.json").read_text())
    meta["model"]["members"] = ["logreg", "bigru"]
    del meta["reference_stats"]["utterance_compare"]
    (model_dir / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="rerun the train stage"):
        Predictor(model_dir)


def test_a_model_saved_before_functional_sets_is_a_model_error(served_model_dir, tmp_path):
    """A model of the previous version: one functionals set in features, no model.functionals, inputs
    named by kind. Its meta.json is refused with the advice to retrain, not a validation traceback."""
    model_dir = _copy_model(served_model_dir, tmp_path / MODEL_DIR)
    meta = json.loads((model_dir / "meta.json").read_text())
    meta["features"]["functionals"] = "egemaps"
    meta["model"]["members"] = ["logreg", "bigru"]
    del meta["model"]["functionals"]
    meta["reference_stats"] = {"utterance": meta["reference_stats"]["utterance_egemaps"], "frames": meta["reference_stats"]["frames"]}
    (model_dir / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="rerun the train stage"):
        Predictor(model_dir)


def test_predictor_reads_its_params_from_meta(predictor, served_model_dir):
    meta = json.loads((served_model_dir / "meta.json").read_text())
    assert predictor.audio.model_dump() == meta["audio"]
    assert predictor.features.model_dump() == meta["features"]
    assert predictor.params.model_dump() == meta["model"]
    assert set(predictor.reference) == set(meta["reference_stats"]) == set(SERVED_INPUTS)
    for kind, saved in meta["reference_stats"].items():
        np.testing.assert_array_equal(predictor.reference[kind][0], np.float32(saved["mean"]))
        np.testing.assert_array_equal(predictor.reference[kind][1], np.float32(saved["std"]))


# ---------------------------------------------------------------- metrics and info


def _metrics() -> dict:
    """reports/metrics.json as the evaluate stage writes it (``ser.evaluation.summarize``)."""
    return {
        "protocol": "speaker", "n_test": 81, "accuracy": 0.7, "macro_f1": 0.65, "ece": 0.08, "min_recall": 0.3,
        "serving_accuracy": 0.66, "corpus_mean_accuracy": 0.62, "recall": {e: 0.6 for e in EMOTIONS},
        "by_corpus": {"emovo": {"n_test": 20, "accuracy": 0.45}, "ravdess": {"n_test": 21, "accuracy": 0.5},
                      "tess": {"n_test": 40, "accuracy": 0.9}},
        "by_speaker": {"tess/OAF": {"n_test": 20, "accuracy": 0.95}},
        "folds": {
            "fold1": {"n_train": 10, "n_val": 3, "n_test": 40, "accuracy": 0.75, "macro_f1": 0.7, "ece": 0.1, "min_recall": 0.25,
                      "serving_accuracy": 0.72, "recall": {e: 0.5 for e in EMOTIONS}, "precision": {"angry": 1.0}},
            "fold2": {"n_test": 41, "accuracy": 0.5},
        },
    }


@pytest.fixture
def project_model(served_model_dir, tmp_path) -> Path:
    """A copy of the served (deployable) model at ``<project>/models``, with no reports yet."""
    return _copy_model(served_model_dir, tmp_path / "project" / MODEL_DIR)


def _fold_model(project_model: Path, fold: str) -> Path:
    """A fold model at ``<project>/models/folds/<fold>``, as the train stage writes them."""
    model_dir = project_model / FOLD_MODEL_DIR.relative_to(MODEL_DIR) / fold
    shutil.copytree(project_model, model_dir, ignore=shutil.ignore_patterns(FOLD_MODEL_DIR.name))
    meta = json.loads((model_dir / "meta.json").read_text())
    (model_dir / "meta.json").write_text(json.dumps({**meta, "fold": fold}))
    return model_dir


def _write_report(project_model: Path, metrics: dict | None = None) -> Path:
    path = project_model.parent / METRICS
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics or _metrics()))
    return path


def test_scored_metrics_of_the_deployable_model_are_over_all_folds(project_model):
    path = _write_report(project_model)
    scores = scored_metrics(project_model, "all")
    assert scores == {
        "file": os.path.relpath(path.resolve()), "protocol": "speaker", "fold": "all folds",
        "n_test": 81, "accuracy": 0.7, "macro_f1": 0.65, "ece": 0.08, "min_recall": 0.3, "serving_accuracy": 0.66,
        "recall": {e: 0.6 for e in EMOTIONS}, "corpus_accuracy": {"emovo": 0.45, "ravdess": 0.5, "tess": 0.9},
    }


def test_scored_metrics_of_a_fold_model_are_its_own_folds(project_model):
    path = _write_report(project_model)
    fold1 = _fold_model(project_model, "fold1")
    scores = scored_metrics(fold1, "fold1")
    assert scores == {
        "file": os.path.relpath(path.resolve()), "protocol": "speaker", "fold": "fold1", "n_test": 40, "accuracy": 0.75,
        "macro_f1": 0.7, "ece": 0.1, "min_recall": 0.25, "serving_accuracy": 0.72, "recall": {e: 0.5 for e in EMOTIONS},
    }
    assert "corpus_accuracy" not in scores
    assert scored_metrics(_fold_model(project_model, "fold2"), "fold2") == {
        "file": os.path.relpath(path.resolve()), "protocol": "speaker", "fold": "fold2", "n_test": 41, "accuracy": 0.5,
    }


def test_scored_metrics_of_a_fold_missing_from_the_report_is_none(project_model):
    """A fold model that the report does not score (a report of other folds, e.g. from another protocol)
    has no scores: the pooled scores of other models' folds are not its own."""
    _write_report(project_model)
    assert scored_metrics(_fold_model(project_model, "test_tess"), "test_tess") is None
    assert scored_metrics(project_model, "fold9") is None


def test_scored_metrics_is_none_without_a_report(project_model):
    assert scored_metrics(project_model, "all") is None
    assert scored_metrics(_fold_model(project_model, "fold1"), "fold1") is None


def test_scored_metrics_finds_the_report_from_a_relative_model_dir(project_model, monkeypatch):
    _write_report(project_model)
    _fold_model(project_model, "fold1")
    monkeypatch.chdir(project_model.parent)
    assert scored_metrics(MODEL_DIR, "all")["accuracy"] == 0.7
    assert scored_metrics(FOLD_MODEL_DIR / "fold1", "fold1")["accuracy"] == 0.75
    assert scored_metrics(MODEL_DIR, "all")["file"] == str(METRICS)


def test_info_describes_the_model_and_its_scores(project_model, served_model_dir):
    meta = json.loads((served_model_dir / "meta.json").read_text())
    info = Predictor(project_model).info()
    assert info["arch"] == "ensemble"
    assert info["classes"] == list(EMOTIONS)
    assert info["fold"] == "all"
    assert info["window_s"] == meta["audio"]["duration"]
    assert info["params"] == {key: meta[key] for key in ("audio", "features", "split", "model", "train")}
    assert info["metrics"] is None
    _write_report(project_model)
    info = Predictor(project_model).info()
    assert info["metrics"]["accuracy"] == 0.7 and info["metrics"]["fold"] == "all folds"
    assert info["metrics"]["protocol"] == "speaker"
    assert info["metrics"]["corpus_accuracy"] == {"emovo": 0.45, "ravdess": 0.5, "tess": 0.9}
    fold_info = Predictor(_fold_model(project_model, "fold1")).info()
    assert fold_info["fold"] == "fold1" and fold_info["metrics"]["accuracy"] == 0.75
    json.dumps(info)


def test_info_says_what_the_model_was_trained_on(project_model):
    """The corpora (clips of each), speakers and clips the model learned from, as its split says."""
    info = Predictor(project_model).info()
    split = pd.read_csv(project_model / "split.csv")
    learned = split[split["part"].isin(["train", "val"])]
    assert info["trained_on"] == {
        "corpora": learned.groupby("corpus").size().to_dict(), "speakers": learned["speaker"].nunique(), "clips": len(learned),
    }
    assert info["trained_on"] == {"corpora": {"emovo": 1, "ravdess": 2, "tess": 4}, "speakers": 4, "clips": 7}
    assert list(info["trained_on"]["corpora"]) == sorted(info["trained_on"]["corpora"])


def test_info_of_a_model_without_trained_on_says_so(project_model):
    """A model saved before ``trained_on`` existed still loads; info has ``None`` for it."""
    meta = json.loads((project_model / "meta.json").read_text())
    del meta["trained_on"]
    (project_model / "meta.json").write_text(json.dumps(meta))
    assert Predictor(project_model).info()["trained_on"] is None


def test_served_model_is_the_deployable_model(served_model_dir):
    meta = json.loads((served_model_dir / "meta.json").read_text())
    assert meta["fold"] == "all" and meta["folds"] == list(SERVED_FOLDS)
    assert meta["classes"] == list(EMOTIONS)


# ---------------------------------------------------------------- no TensorFlow


def test_inference_does_not_import_tensorflow(served_model_dir, synthetic_clips):
    script = textwrap.dedent(
        f"""
        import sys
        from ser.inference import Predictor
        predictor = Predictor({str(served_model_dir)!r})
        prediction = predictor.predict_file({str(synthetic_clips[0])!r})
        adapted = predictor.predict([predictor.clip_features({str(synthetic_clips[1])!r})], adapt=True)
        assert abs(prediction.probabilities.sum() - 1) < 1e-5
        loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras'))
        print('LOADED', loaded)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "LOADED []" in result.stdout
