"""params.yaml validation: every mistake stops with a message naming the key."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from ser.params import (
    ARCHS,
    CLASSIFIERS,
    FEATURE_KINDS,
    FUNCTIONALS,
    MEMBER,
    NETWORKS,
    NORMALIZATIONS,
    PROTOCOLS,
    RECIPES,
    DataParams,
    FeatureParams,
    ModelParams,
    Params,
    ParamsError,
    load_params,
    validate_params,
)

PARAMS_YAML = Path(__file__).resolve().parents[1] / "params.yaml"


def _errors(raw) -> str:
    with pytest.raises(ParamsError) as info:
        validate_params(raw)
    return str(info.value)


def _names_key(message: str, dotted: str) -> bool:
    """The message names ``section.key`` (field errors) or ``section: key`` (cross-field checks)."""
    section, _, leaf = dotted.rpartition(".")
    return dotted in message or (f"{section}: " in message and leaf in message)


def _numeric_leaves(tree, prefix=()):
    """(path, value) for every number in the params tree, list items included."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _numeric_leaves(value, (*prefix, key))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            yield from _numeric_leaves(value, (*prefix, i))
    elif isinstance(tree, (int, float)) and not isinstance(tree, bool):
        yield prefix, tree


def _set(tree, path, value):
    for part in path[:-1]:
        tree = tree[part]
    tree[path[-1]] = value


with PARAMS_YAML.open() as _handle:
    _NUMERIC = list(_numeric_leaves(yaml.safe_load(_handle)))


def test_load_params_on_repo_file():
    params = load_params(PARAMS_YAML)
    assert isinstance(params, Params)
    with PARAMS_YAML.open() as handle:
        raw = yaml.safe_load(handle)
    # Values survive validation unchanged; what is left out takes its default.
    assert params.model_dump(exclude_unset=True) == raw
    assert list(params.data.sources) == list(raw["data"]["sources"])  # order kept: it decides repeated audio
    tess = params.data.sources["tess"]
    assert (tess.recipe, tess.sha256, params.data.map_of("tess")) == ("tess", "", {})
    assert params.data.map_of("ravdess") == {"calm": None}
    assert params.audio.n_samples == round(raw["audio"]["duration"] * raw["audio"]["sr"])


def test_valid_params_round_trip(raw_params):
    params = validate_params(raw_params)
    assert validate_params(params.model_dump()) == params


def test_params_are_frozen(raw_params):
    params = validate_params(raw_params)
    with pytest.raises(Exception):
        params.features.n_mfcc = 13  # type: ignore[misc]


def test_load_params_names_the_file(tmp_path, raw_params):
    raw_params["features"]["n_mfcc"] = 0
    path = tmp_path / "bad-params.yaml"
    path.write_text(yaml.safe_dump(raw_params))
    with pytest.raises(ParamsError) as info:
        load_params(path)
    assert str(path) in str(info.value)
    assert "features.n_mfcc" in str(info.value)


def test_unknown_top_level_key(raw_params):
    raw_params["trainning"] = {"epochs": 3}
    message = _errors(raw_params)
    assert "trainning: unknown key" in message


def test_unknown_key_inside_a_section(raw_params):
    raw_params["features"]["n_mfc"] = 13
    message = _errors(raw_params)
    assert "features.n_mfc: unknown key" in message


@pytest.mark.parametrize(
    ("section", "key"),
    [("augment", "copy"), ("model", "spec_augmentation"), ("train", "early_stop"), ("model", "normalise")],
)
def test_unknown_new_keys(raw_params, section, key):
    raw_params[section][key] = 1
    assert f"{section}.{key}: unknown key" in _errors(raw_params)


def test_unknown_key_inside_a_nested_section(raw_params):
    raw_params["model"]["spec_augment"]["time_mask"] = 2
    assert "model.spec_augment.time_mask: unknown key" in _errors(raw_params)


def test_old_mfcc_section_is_unknown(raw_params):
    raw_params["mfcc"] = raw_params.pop("features")
    message = _errors(raw_params)
    assert "mfcc: unknown key" in message
    assert "features: missing" in message


def test_missing_nested_key(raw_params):
    del raw_params["model"]["spec_augment"]["time_width"]
    assert "model.spec_augment.time_width: missing" in _errors(raw_params)


def test_misspelt_key_reports_unknown_and_missing(raw_params):
    raw_params["audio"]["durration"] = raw_params["audio"].pop("duration")
    message = _errors(raw_params)
    assert "audio.durration: unknown key" in message
    assert "audio.duration: missing" in message


def test_missing_section(raw_params):
    del raw_params["split"]
    assert "split: missing" in _errors(raw_params)


def test_not_a_mapping():
    with pytest.raises(ParamsError):
        validate_params(None)
    with pytest.raises(ParamsError):
        validate_params(["data"])


@pytest.mark.parametrize(
    ("path", "value", "shown"),
    [
        (("features", "n_mfcc"), "forty", "'forty'"),
        (("features", "n_mfcc"), 40.5, "40.5"),
        (("features", "kind"), 1, "1"),
        (("augment", "copies"), "2", "'2'"),
        (("augment", "copies"), 2.0, "2.0"),
        (("augment", "tempo"), "fast", "'fast'"),
        (("augment", "tempo"), 1.1, "1.1"),
        (("augment", "noise_snr_db"), 20, "20"),
        (("augment", "seed"), "42", "'42'"),
        (("model", "deltas"), 1.5, "1.5"),
        (("model", "normalize"), None, "None"),
        (("model", "spec_augment"), "on", "'on'"),
        (("model", "spec_augment", "time_masks"), 1.5, "1.5"),
        (("model", "input_noise"), "0.1", "'0.1'"),
        (("train", "early_stopping"), 2.5, "2.5"),
        (("train", "reduce_lr"), "4", "'4'"),
        (("audio", "duration"), "three", "'three'"),
        (("model", "dense_units"), 128, "128"),
        (("model", "dense_units"), ["a", 64], "'a'"),
        (("data", "sources"), 42, "42"),
        (("data", "sources"), ["tess"], "['tess']"),
        (("data", "sources", "tess"), "../shared/data/tess", "'../shared/data/tess'"),
        (("data", "sources", "tess", "source"), 42, "42"),
        (("data", "sources", "tess", "recipe"), None, "None"),
        (("data", "maps", "ravdess"), ["calm"], "['calm']"),
        (("data", "maps", "ravdess", "calm"), 1, "1"),
        (("runtime", "featurize", "workers"), "2", "'2'"),
        (("runtime", "train", "workers"), 1.5, "1.5"),
        (("data", "emotions"), "angry", "'angry'"),
        (("data", "emotions", 0), 1, "1"),
        (("data", "max_rejected_fraction"), "0.01", "'0.01'"),
        (("split", "folds"), 2.5, "2.5"),
        (("split", "folds"), "5", "'5'"),
        (("split", "train_corpora"), "tess", "'tess'"),
        (("train", "epochs"), [50], "[50]"),
        (("serve", "max_uploads_in_flight"), 2.5, "2.5"),
        (("serve", "body_timeout_s"), "soon", "'soon'"),
    ],
)
def test_wrong_type(raw_params, path, value, shown):
    _set(raw_params, path, value)
    message = _errors(raw_params)
    assert ".".join(map(str, path)) in message
    assert f"(got {shown})" in message  # the offending value is shown


@pytest.mark.parametrize("value", [0, -1, -40])
def test_n_mfcc_must_be_positive(raw_params, value):
    raw_params["features"]["n_mfcc"] = value
    message = _errors(raw_params)
    assert "features.n_mfcc" in message
    assert "greater than 0" in message


@pytest.mark.parametrize("key", ["max_upload_mb", "max_duration_s", "workers", "max_uploads_in_flight", "body_timeout_s"])
@pytest.mark.parametrize("value", [0, -2])
def test_serve_limits_must_be_positive(raw_params, key, value):
    raw_params["serve"][key] = value
    message = _errors(raw_params)
    assert "serve." + key in message
    assert "greater than 0" in message


@pytest.mark.parametrize("value", [0, 0.0, -3.0])
def test_duration_must_be_positive(raw_params, value):
    raw_params["audio"]["duration"] = value
    message = _errors(raw_params)
    assert "audio.duration" in message
    assert "greater than 0" in message


@pytest.mark.parametrize(
    ("path", "value", "allowed"),
    [
        (("split", "protocol"), "speakers", PROTOCOLS),
        (("model", "arch"), "transformer", ARCHS),
        (("features", "kind"), "mel", FEATURE_KINDS),
        (("model", "normalize"), "global", NORMALIZATIONS),
        (("audio", "res_type"), "kaiser_best", ("soxr_hq", "polyphase")),
        (("model", "functionals"), "gemaps", (*FUNCTIONALS, "none")),
        (("features", "functionals", 0), "gemaps", FUNCTIONALS),
    ],
)
def test_unknown_literal_lists_allowed_values(raw_params, path, value, allowed):
    _set(raw_params, path, value)
    message = _errors(raw_params)
    assert ".".join(map(str, path)) in message
    assert repr(value) in message
    for option in allowed:
        assert f"'{option}'" in message


@pytest.mark.parametrize(
    ("key", "limit_key", "bad", "limit"),
    [("hop_length", "n_fft", 1024, 512), ("n_mfcc", "n_mels", 40, 32)],
)
def test_value_may_not_exceed_its_limit(raw_params, key, limit_key, bad, limit):
    raw_params["features"].update({"kind": "mfcc", limit_key: limit, key: bad})
    message = _errors(raw_params)
    assert _names_key(message, f"features.{key}")
    assert limit_key in message
    # Equal is fine.
    raw_params["features"][key] = limit
    assert getattr(validate_params(raw_params).features, key) == limit


def test_n_mfcc_above_n_mels_is_fine_for_logmel(raw_params):
    """log-mel features do not use n_mfcc, so it does not constrain n_mels."""
    raw_params["features"].update(kind="logmel", n_mels=32, n_mfcc=40)
    features = validate_params(raw_params).features
    assert (features.kind, features.n_mels) == ("logmel", 32)


@pytest.mark.parametrize(
    ("kind", "n_mfcc", "n_mels", "channels"),
    [("mfcc", 40, 128, 40), ("mfcc", 13, 64, 13), ("logmel", 40, 128, 128), ("logmel", 40, 64, 64)],
)
def test_n_channels(kind, n_mfcc, n_mels, channels):
    features = FeatureParams(kind=kind, n_mfcc=n_mfcc, n_mels=n_mels, n_fft=2048, hop_length=512)
    assert features.n_channels == channels


@pytest.mark.parametrize("key", ["noise_snr_db", "tempo"])
@pytest.mark.parametrize("value", [[1.0], [1.2, 1.1], [1.0, 1.1, 1.2]])
def test_augment_ranges_are_empty_or_low_high(raw_params, key, value):
    raw_params["augment"][key] = value
    message = _errors(raw_params)
    assert _names_key(message, f"augment.{key}"), message
    assert repr(value) in message or str([float(v) for v in value]) in message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("noise_snr_db", []), ("noise_snr_db", [20, 20]), ("noise_snr_db", [-20, 100]), ("noise_snr_db", [0.5, 30]),
        ("tempo", []), ("tempo", [1.0, 1.0]), ("tempo", [0.25, 4]), ("tempo", [0.9, 1.1]),
    ],
)
def test_augment_ranges_accepted(raw_params, key, value):
    raw_params["augment"][key] = value
    assert getattr(validate_params(raw_params).augment, key) == value


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("noise_snr_db", [-21, 10]), ("noise_snr_db", [10, 101]), ("noise_snr_db", [float("nan")] * 2),
        ("tempo", [0.2, 1.0]), ("tempo", [1.0, 4.5]), ("tempo", [0, 1.0]), ("tempo", [float("nan")] * 2),
    ],
)
def test_augment_ranges_are_bounded(raw_params, key, value):
    raw_params["augment"][key] = value
    assert _names_key(_errors(raw_params), f"augment.{key}")


def test_augmentation_can_be_turned_off(raw_params):
    raw_params["augment"].update(copies=0, noise_snr_db=[], shift_s=0, pitch_semitones=0, tempo=[], gain_db=0)
    raw_params["model"].update(input_noise=0)
    raw_params["model"]["spec_augment"] = {"time_masks": 0, "time_width": 0, "feature_masks": 0, "feature_width": 0}
    raw_params["train"].update(early_stopping=0, reduce_lr=0)
    params = validate_params(raw_params)
    assert params.augment.copies == 0 and params.augment.tempo == [] and params.augment.noise_snr_db == []
    assert params.model.spec_augment.time_masks == 0
    assert (params.train.early_stopping, params.train.reduce_lr) == (0, 0)


@pytest.mark.parametrize("deltas", [0, 1, 2])
def test_deltas_in_range(raw_params, deltas):
    raw_params["model"]["deltas"] = deltas
    assert validate_params(raw_params).model.deltas == deltas


@pytest.mark.parametrize("value", ["abc", "0" * 63, "0" * 65, "g" * 64, "sha256:" + "0" * 64])
def test_bad_sha256(raw_params, value):
    raw_params["data"]["sources"]["emovo"]["sha256"] = value
    message = _errors(raw_params)
    assert "data.sources.emovo.sha256" in message
    assert repr(value) in message


@pytest.mark.parametrize("value", ["", "0" * 64, "AbCdEf0123456789" * 4])
def test_good_sha256(raw_params, value):
    raw_params["data"]["sources"]["emovo"]["sha256"] = value
    assert validate_params(raw_params).data.sources["emovo"].sha256 == value


# ---------------------------------------------------------------------------------------------------------------
# data: sources, emotions and mappings


def test_recipes_match_the_corpora_registry():
    from ser.corpora import recipes

    assert set(RECIPES) == set(recipes())
    assert len(RECIPES) == len(set(RECIPES))


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_recipe_is_accepted(raw_params, recipe):
    raw_params["data"]["sources"]["tess"]["recipe"] = recipe
    assert validate_params(raw_params).data.sources["tess"].recipe == recipe


@pytest.mark.parametrize("recipe", ["TESS", "crema-d", "table", "", "folder"])
def test_unknown_recipe_lists_the_recipes(raw_params, recipe):
    raw_params["data"]["sources"]["tess"]["recipe"] = recipe
    message = _errors(raw_params)
    assert "data.sources.tess.recipe" in message
    assert repr(recipe) in message
    for known in RECIPES:
        assert f"'{known}'" in message


@pytest.mark.parametrize(
    ("label", "target"), [("calm", "relaxed"), ("calm", "Neutral"), ("surprised", "surprised"), ("ps", "")],
)
def test_map_onto_a_class_not_in_emotions(raw_params, label, target):
    raw_params["data"]["maps"]["ravdess"] = {"fearful": "fear", label: target}
    message = _errors(raw_params)
    assert "data: maps.ravdess maps onto classes not in data.emotions" in message
    assert repr({label: target}) in message  # only the wrong entry, by its key
    assert "fearful" not in message.split("(got")[0]
    assert ", ".join(raw_params["data"]["emotions"]) in message  # what the classes are


def test_map_onto_a_class_removed_from_emotions(raw_params):
    raw_params["data"]["maps"]["ravdess"] = {"calm": "neutral"}
    raw_params["data"]["emotions"].remove("neutral")
    assert "maps.ravdess maps onto classes not in data.emotions: {'calm': 'neutral'}" in _errors(raw_params)


def test_a_map_for_a_corpus_not_in_the_sources(raw_params):
    raw_params["data"]["maps"]["crema"] = {"calm": None}
    assert "data: maps names corpora not in data.sources: ['crema']" in _errors(raw_params)


def test_a_map_inside_a_source_points_to_data_maps(raw_params):
    raw_params["data"]["sources"]["ravdess"]["map"] = {"calm": None}
    assert "map is not a source key: a corpus's label map goes in data.maps.<corpus>" in _errors(raw_params)


@pytest.mark.parametrize("mapping", [{}, {"calm": None}, {"calm": "neutral"}, {"surprised": None, "calm": "neutral", "bored": "sad"}])
def test_good_maps(raw_params, mapping):
    raw_params["data"]["maps"]["ravdess"] = mapping
    assert validate_params(raw_params).data.map_of("ravdess") == mapping


def test_maps_and_sha256_are_optional(raw_params):
    raw_params["data"]["sources"]["ravdess"] = {"recipe": "ravdess", "source": "corpus.zip"}
    del raw_params["data"]["maps"]
    params = validate_params(raw_params)
    assert (params.data.sources["ravdess"].sha256, params.data.map_of("ravdess")) == ("", {})


def test_runtime_settings_are_optional(raw_params):
    del raw_params["runtime"]
    runtime = validate_params(raw_params).runtime
    assert (runtime.featurize.workers, runtime.featurize.scheduler, runtime.train.workers) == (0, "", 0)


@pytest.mark.parametrize("name", ["TESS", "1tess", "my-corpus", "my corpus", "_tess", "tess\n", "crema.d", "é"])
def test_bad_source_names(raw_params, name):
    raw_params["data"]["sources"][name] = raw_params["data"]["sources"].pop("tess")
    message = _errors(raw_params)
    assert "data: source names must be lower case letters, digits and _" in message
    assert repr(name) in message


def test_all_is_not_a_source_name(raw_params):
    """The reports call every corpus together "all" (confusion/all.png)."""
    raw_params["data"]["sources"]["all"] = raw_params["data"]["sources"].pop("tess")
    assert "a source may not be named 'all'" in _errors(raw_params)


@pytest.mark.parametrize("name", ["tess2", "crema_d", "my_own_1", "x"])
def test_good_source_names(raw_params, name):
    raw_params["data"]["sources"][name] = raw_params["data"]["sources"].pop("tess")
    assert name in validate_params(raw_params).data.sources


@pytest.mark.parametrize("name", ["Angry", "pleasant surprise", "fear!", "", "2sad", "sad\n"])
def test_bad_emotion_names(raw_params, name):
    raw_params["data"]["emotions"][0] = name
    message = _errors(raw_params)
    assert "data: emotion names must be lower case letters, digits and _" in message
    assert repr(name) in message


def test_repeated_emotions(raw_params):
    raw_params["data"]["emotions"].append("sad")
    message = _errors(raw_params)
    assert "data: emotions must not repeat" in message


@pytest.mark.parametrize("emotions", [[], ["angry"], [f"e{k}" for k in range(65)]])
def test_number_of_emotions(raw_params, emotions):
    raw_params["data"]["emotions"] = emotions
    raw_params["data"]["maps"] = {}
    assert "data.emotions" in _errors(raw_params)


def test_emotions_order_is_kept(raw_params):
    raw_params["data"]["emotions"] = ["sad", "angry", "calm"]
    raw_params["data"]["maps"]["ravdess"] = {"calm": "calm"}
    assert validate_params(raw_params).data.emotions == ["sad", "angry", "calm"]


def test_sources_must_not_be_empty(raw_params):
    raw_params["data"]["sources"] = {}
    assert "data.sources" in _errors(raw_params)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (lambda s: s.pop("recipe"), "data.sources.tess.recipe: missing"),
        (lambda s: s.pop("source"), "data.sources.tess.source: missing"),
        (lambda s: s.update(source=""), "data.sources.tess.source"),
        (lambda s: s.update(maps={"calm": None}), "data.sources.tess.maps: unknown key"),
        (lambda s: s.update(test_speaker="OAF"), "data.sources.tess.test_speaker: unknown key"),
    ],
)
def test_source_keys(raw_params, change, key):
    change(raw_params["data"]["sources"]["tess"])
    assert key in _errors(raw_params)


def test_old_single_source_keys_are_unknown(raw_params):
    raw_params["data"]["source"] = "../shared/data/tess"
    raw_params["data"]["sha256"] = ""
    message = _errors(raw_params)
    assert "data.source: unknown key" in message
    assert "data.sha256: unknown key" in message


def test_data_params_direct():
    data = DataParams(sources={"own": {"recipe": "csv", "source": "labels.csv"}}, emotions=["a", "b"], max_rejected_fraction=0)
    assert data.sources["own"].recipe == "csv"


# ---------------------------------------------------------------------------------------------------------------
# split


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_every_protocol_is_accepted(raw_params, protocol):
    raw_params["split"]["protocol"] = protocol
    assert validate_params(raw_params).split.protocol == protocol


def test_protocols():
    assert set(PROTOCOLS) == {"speaker", "corpus", "text", "random"}


@pytest.mark.parametrize("protocol", ["word", "speakers", "loso"])
def test_old_or_unknown_protocols(raw_params, protocol):
    raw_params["split"]["protocol"] = protocol
    assert "split.protocol" in _errors(raw_params)


@pytest.mark.parametrize("folds", [1, 0, -5, 1001])
def test_folds_out_of_range(raw_params, folds):
    raw_params["split"]["folds"] = folds
    assert "split.folds" in _errors(raw_params)


@pytest.mark.parametrize("folds", [2, 10, 1000])
def test_folds_in_range(raw_params, folds):
    raw_params["split"]["folds"] = folds
    assert validate_params(raw_params).split.folds == folds


def test_train_corpora(raw_params):
    raw_params["split"]["train_corpora"] = ["tess", "emovo"]
    assert validate_params(raw_params).split.train_corpora == ["tess", "emovo"]
    raw_params["split"]["train_corpora"] = [1]
    assert "split.train_corpora.0" in _errors(raw_params)


def test_old_test_speaker_is_unknown(raw_params):
    raw_params["split"]["test_speaker"] = "YAF"
    assert "split.test_speaker: unknown key" in _errors(raw_params)


def test_every_problem_is_reported_at_once(raw_params):
    raw_params["features"]["n_mfcc"] = -1
    raw_params["split"]["protocol"] = "nope"
    raw_params["train"]["batch_size"] = 0
    raw_params["augment"]["copies"] = -2
    raw_params["model"]["spec_augment"]["time_width"] = -3
    message = _errors(raw_params)
    for key in ("features.n_mfcc", "split.protocol", "train.batch_size", "augment.copies", "model.spec_augment.time_width"):
        assert key in message


def test_params_yaml_has_numeric_leaves():
    keys = {".".join(map(str, path)) for path, _ in _NUMERIC}
    # The bound test below must cover every section's numbers.
    assert {
        "audio.sr", "features.n_mfcc", "features.n_mels", "augment.copies", "augment.tempo.1", "augment.noise_snr_db.0",
        "split.seed", "train.seed", "train.early_stopping", "model.dense_units.0", "model.spec_augment.time_width",
        "data.max_rejected_fraction", "split.folds", "split.test_fraction", "split.validation_fraction",
    } <= keys


# Negative SNRs are valid (noise louder than the clip), down to -20 dB.
_BELOW_RANGE = {"augment.noise_snr_db.0": -21, "audio.level_dbfs": -81}


@pytest.mark.parametrize(
    "path", [path for path, _ in _NUMERIC], ids=[".".join(map(str, p)) for p, _ in _NUMERIC]
)
def test_every_numeric_leaf_is_bounded(raw_params, path):
    _set(raw_params, path, _BELOW_RANGE.get(".".join(map(str, path)), -1))
    message = _errors(raw_params)
    named = [str(part) for part in path if not isinstance(part, int)]
    assert _names_key(message, ".".join(named)), message


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("data", "max_rejected_fraction"), 1.5),
        (("split", "folds"), 1001),
        (("audio", "sr"), 10_000_000),
        (("audio", "duration"), 1e6),
        (("features", "n_mfcc"), 1000),
        (("features", "n_mels"), 513),
        (("features", "n_fft"), 10**7),
        (("augment", "copies"), 65),
        (("augment", "shift_s"), 5.5),
        (("augment", "pitch_semitones"), 12.5),
        (("augment", "gain_db"), 41),
        (("model", "deltas"), 3),
        (("model", "filters"), 4097),
        (("model", "kernel_size"), 65),
        (("model", "conv_layers"), 17),
        (("model", "rnn_units"), 4097),
        (("model", "input_noise"), 10.5),
        (("model", "spec_augment", "time_masks"), 17),
        (("model", "spec_augment", "time_width"), 1001),
        (("model", "spec_augment", "feature_masks"), 17),
        (("model", "spec_augment", "feature_width"), 513),
        (("train", "early_stopping"), 10_001),
        (("train", "reduce_lr"), 10_001),
        (("split", "test_fraction"), 1.0),
        (("split", "validation_fraction"), 1.0),
        (("model", "lstm_units"), 10**6),
        (("model", "dropout"), 1.0),
        (("train", "epochs"), 10**9),
        (("train", "batch_size"), 10**9),
        (("train", "learning_rate"), 10.0),
    ],
)
def test_upper_bounds(raw_params, path, value):
    _set(raw_params, path, value)
    assert ".".join(path) in _errors(raw_params)


@pytest.mark.parametrize("path", [("split", "seed"), ("train", "seed"), ("augment", "seed")])
def test_seeds_are_bounded_above(raw_params, path):
    _set(raw_params, path, 2**32)
    assert ".".join(path) in _errors(raw_params)


def test_seed_just_below_2_pow_32_is_usable(raw_params):
    """The largest seed the libraries accept is 2**32 - 1; validation must not reject it."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    raw_params["split"]["seed"] = 2**32 - 1
    params = validate_params(raw_params)
    train_test_split(np.arange(10), test_size=0.2, random_state=params.split.seed)
    with pytest.raises(ValueError):  # one above is not: the reason for the bound above
        np.random.RandomState(2**32)


@pytest.mark.parametrize(
    "path",
    [
        ("features", "n_mfcc"), ("train", "epochs"), ("augment", "copies"), ("augment", "gain_db"),
        ("augment", "tempo", 0), ("model", "deltas"), ("model", "spec_augment", "feature_masks"), ("train", "reduce_lr"),
        ("split", "folds"), ("data", "max_rejected_fraction"), ("split", "test_fraction"),
    ],
)
def test_booleans_are_not_numbers(raw_params, path):
    _set(raw_params, path, True)
    assert ".".join(map(str, path)) in _errors(raw_params)


def test_dense_units_may_be_empty(raw_params):
    raw_params["model"]["dense_units"] = []
    assert validate_params(raw_params).model.dense_units == []


def test_validation_does_not_mutate_input(raw_params):
    before = copy.deepcopy(raw_params)
    validate_params(raw_params)
    assert raw_params == before


def test_archs_match_the_model_registry():
    import ser.models.networks  # imports keras: only here

    assert NETWORKS == tuple(ser.models.networks.ARCHITECTURES)
    assert set(NETWORKS) <= set(ARCHS)


# --- functional sets and ensemble members -----------------------------------------------------------------


def _ensemble(raw_params, members, functionals="egemaps", sets=("egemaps", "compare")) -> dict:
    """``raw_params`` with an ensemble of ``members`` whose classifiers read ``functionals`` unless a member
    names its set, and featurize computing ``sets``."""
    raw_params["model"].update(arch="ensemble", members=list(members), functionals=functionals)
    raw_params["features"]["functionals"] = list(sets)
    return raw_params


def test_functionals_are_the_names_of_the_opensmile_sets():
    from ser.functionals import FEATURE_SETS, SIZES

    assert set(FUNCTIONALS) == set(FEATURE_SETS) and {SIZES[kind] for kind in FUNCTIONALS} == {88, 6373}
    assert "none" not in FUNCTIONALS  # a set computed is a set: "none" is for what a classifier reads


@pytest.mark.parametrize("sets", [[], ["egemaps"], ["compare"], ["egemaps", "compare"], ["compare", "egemaps"]])
def test_features_compute_any_of_the_functional_sets(raw_params, sets):
    raw_params["model"].update(arch="bigru", members=[], functionals="none")
    raw_params["features"]["functionals"] = sets
    assert validate_params(raw_params).features.functionals == sets


@pytest.mark.parametrize(("value", "shown"), [("egemaps", "'egemaps'"), ("none", "'none'"), (None, "None")])
def test_features_functionals_is_a_list_of_sets(raw_params, value, shown):
    """A single set is no longer a value, nor is ``none`` (no set: ``[]``)."""
    raw_params["model"].update(arch="bigru", members=[], functionals="none")
    raw_params["features"]["functionals"] = value
    message = _errors(raw_params)
    assert "features.functionals" in message and f"(got {shown})" in message


def test_features_functionals_none_in_the_list_is_refused(raw_params):
    raw_params["features"]["functionals"] = ["egemaps", "none"]
    message = _errors(raw_params)
    assert "features.functionals.1" in message and "'none'" in message


def test_features_functionals_may_not_repeat_a_set(raw_params):
    """A set named twice would be written twice to one file (featurize fails only after computing every clip)."""
    raw_params["model"].update(arch="ensemble", members=["logreg", "bigru"], functionals="egemaps")  # reads egemaps only
    raw_params["features"]["functionals"] = ["egemaps", "egemaps"]
    message = _errors(raw_params)
    assert _names_key(message, "features.functionals") and "does not compute" not in message


def test_features_functionals_default_to_none_computed():
    assert FeatureParams(kind="mfcc", n_mfcc=13, n_mels=40, n_fft=512, hop_length=256).functionals == []


@pytest.mark.parametrize(
    "member",
    ["logreg:mfcc", "logreg:none", "logreg:", ":egemaps", "bigru:egemaps", "seed_lstm:compare", "ensemble", "LogReg",
     " logreg", "logreg ", "logreg:egemaps:compare", "logreg;compare", "logreg:Compare", "transformer", ""],
)
def test_bad_members_are_named(raw_params, member):
    message = _errors(_ensemble(raw_params, ["bigru", member]))
    assert _names_key(message, "model.members")
    assert repr(member) in message
    assert re.fullmatch(MEMBER, member) is None


@pytest.mark.parametrize(
    "members",
    [["logreg", "logreg"], ["bigru", "logreg", "bigru"], ["logreg:compare", "bigru", "logreg:compare"]],
)
def test_repeated_members_are_refused(raw_params, members):
    message = _errors(_ensemble(raw_params, members))
    assert _names_key(message, "model.members") and "repeated" in message


def test_a_member_that_is_another_member_under_another_name_is_refused(raw_params):
    """``logreg`` reads model.functionals: with egemaps there, ``logreg:egemaps`` is the same classifier twice."""
    message = _errors(_ensemble(raw_params, ["logreg", "logreg:egemaps"], functionals="egemaps"))
    assert _names_key(message, "model.members")


@pytest.mark.parametrize(
    "members",
    [["logreg", "logreg:compare"], ["logreg:egemaps", "logreg:compare", "bigru"], ["logreg", "logreg:compare", "bigru"],
     ["cnn1d", "bigru", "seed_lstm"], ["logreg:compare", "cnn1d"]],
)
def test_good_members(raw_params, members):
    assert all(re.fullmatch(MEMBER, member) for member in members)
    assert validate_params(_ensemble(raw_params, members)).model.members == members


def test_an_ensemble_needs_two_members(raw_params):
    assert _names_key(_errors(_ensemble(raw_params, ["logreg:compare"])), "model.members")
    assert _names_key(_errors(_ensemble(raw_params, [])), "model.members")


def test_members_are_for_an_ensemble_only(raw_params):
    raw_params["model"].update(arch="logreg", members=["logreg", "bigru"])
    assert _names_key(_errors(raw_params), "model.members")


def test_member_pattern_lists_every_network_and_classifier_set():
    for arch in NETWORKS:
        assert re.fullmatch(MEMBER, arch) and not re.fullmatch(MEMBER, f"{arch}:egemaps")
    for arch in CLASSIFIERS:
        assert re.fullmatch(MEMBER, arch)
        assert all(re.fullmatch(MEMBER, f"{arch}:{kind}") for kind in FUNCTIONALS)


def test_member_params_give_each_member_its_functionals(raw_params):
    model = validate_params(_ensemble(raw_params, ["logreg", "logreg:compare", "bigru"], functionals="egemaps")).model
    members = model.member_params()
    assert [(m.arch, m.functionals) for m in members] == [("logreg", "egemaps"), ("logreg", "compare"), ("bigru", "egemaps")]
    assert all(m.members == [] for m in members)
    # everything else is the ensemble's
    for member in members:
        assert member.model_dump(exclude={"arch", "members", "functionals"}) == model.model_dump(exclude={"arch", "members", "functionals"})
    assert model.functional_sets() == {"egemaps", "compare"}


def test_a_member_without_a_set_reads_model_functionals(raw_params):
    model = validate_params(_ensemble(raw_params, ["logreg:egemaps", "bigru"], functionals="none")).model
    assert [(m.arch, m.functionals) for m in model.member_params()] == [("logreg", "egemaps"), ("bigru", "none")]
    model = validate_params(_ensemble(raw_params, ["logreg", "logreg:compare"], functionals="none")).model
    assert [(m.arch, m.functionals) for m in model.member_params()] == [("logreg", "none"), ("logreg", "compare")]
    assert model.functional_sets() == {"compare"}  # a classifier reading none needs no set


@pytest.mark.parametrize(
    ("arch", "functionals", "sets"),
    [("logreg", "egemaps", {"egemaps"}), ("logreg", "none", set()), ("bigru", "compare", set()), ("seed_lstm", "egemaps", set())],
)
def test_a_lone_model_reads_its_functionals_if_it_is_a_classifier(raw_params, arch, functionals, sets):
    raw_params["model"].update(arch=arch, members=[], functionals=functionals)
    model = validate_params(raw_params).model
    assert model.member_params() == [model]
    assert model.functional_sets() == sets


@pytest.mark.parametrize(
    ("model", "computed", "missing"),
    [
        ({"arch": "ensemble", "members": ["logreg", "logreg:compare", "bigru"], "functionals": "egemaps"}, ["egemaps"], "compare"),
        ({"arch": "ensemble", "members": ["logreg", "bigru"], "functionals": "egemaps"}, ["compare"], "egemaps"),
        ({"arch": "logreg", "members": [], "functionals": "compare"}, ["egemaps"], "compare"),
        ({"arch": "logreg", "members": [], "functionals": "egemaps"}, [], "egemaps"),
    ],
)
def test_a_model_reading_a_set_featurize_does_not_compute_is_refused(raw_params, model, computed, missing):
    raw_params["model"].update(model)
    raw_params["features"]["functionals"] = computed
    message = _errors(raw_params).split(" (got ")[0]  # the message, not the params it shows
    assert f"'{missing}'" in message and "features.functionals" in message
    # computing the set too makes it valid
    raw_params["features"]["functionals"] = [*computed, missing]
    assert validate_params(raw_params).model.functional_sets() >= {missing}


def test_networks_and_classifiers_reading_none_need_no_set(raw_params):
    raw_params["features"]["functionals"] = []
    raw_params["model"].update(arch="ensemble", members=["logreg", "bigru"], functionals="none")
    assert validate_params(raw_params).model.functional_sets() == set()
    raw_params["model"].update(arch="cnn1d", members=[], functionals="compare")  # a network reads no functionals
    assert validate_params(raw_params).model.functional_sets() == set()


def test_params_yaml_ensemble_reads_the_sets_it_computes(repo_params):
    """params.yaml: an ensemble of logreg on eGeMAPS, logreg on ComParE and a bigru, both sets computed."""
    model = repo_params.model
    assert model.arch == "ensemble"
    assert model.functional_sets() <= set(repo_params.features.functionals)
    readers = {m.functionals for m in model.member_params() if m.arch in CLASSIFIERS}
    assert readers == model.functional_sets() and len(readers) == len([m for m in model.member_params() if m.arch in CLASSIFIERS])


def test_model_params_direct_rejects_bad_members():
    base = load_params(PARAMS_YAML).model.model_dump()
    with pytest.raises(ValueError, match="members"):
        ModelParams(**{**base, "members": ["logreg", "logreg:opensmile"]})
    with pytest.raises(ValueError, match="repeated"):
        ModelParams(**{**base, "members": ["bigru", "bigru"]})
