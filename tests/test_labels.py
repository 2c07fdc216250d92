"""Labels come from TESS file names, with every quirk of the public release."""

from pathlib import Path, PurePosixPath, PureWindowsPath

import pytest

from ser.labels import EMOTIONS, Label, LabelError, parse_label


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("OAF_back_angry.wav", Label("OAF", "back", "angry")),
        ("YAF_germ_disgust.flac", Label("YAF", "germ", "disgust")),
        ("OAF_food_fear.flac", Label("OAF", "food", "fear")),
        ("YAF_dog_happy.wav", Label("YAF", "dog", "happy")),
        ("OAF_bite_neutral.wav", Label("OAF", "bite", "neutral")),
        ("YAF_back_ps.wav", Label("YAF", "back", "ps")),
        ("OAF_chalk_sad.aiff", Label("OAF", "chalk", "sad")),
    ],
)
def test_normal_names(name, expected):
    assert parse_label(name) == expected


@pytest.mark.parametrize("emotion", EMOTIONS)
def test_every_emotion_parses_to_itself(emotion):
    assert parse_label(f"YAF_word_{emotion}.wav").emotion == emotion


def test_oa_speaker_alias():
    # The release names speaker OAF "OA" in exactly one file.
    assert parse_label("OAF_neutral/OA_bite_neutral.flac") == Label("OAF", "bite", "neutral")
    assert parse_label("oa_bite_neutral.wav").speaker == "OAF"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("OAF_BACK_ANGRY.WAV", Label("OAF", "back", "angry")),
        ("oaf_back_angry.wav", Label("OAF", "back", "angry")),
        ("Yaf_Germ_Fear.Flac", Label("YAF", "germ", "fear")),
        ("YAF_back_PS.wav", Label("YAF", "back", "ps")),
        ("OAF_Bar_Sad.wav", Label("OAF", "bar", "sad")),
    ],
)
def test_odd_case_names(name, expected):
    assert parse_label(name) == expected


@pytest.mark.parametrize(
    "name",
    [
        "OAF_back_pleasant_surprise.wav",
        "YAF_back_pleasant_surprised.wav",
        "OAF_back_Pleasant_surprise.wav",
        "YAF_back_Pleasant_Surprised.wav",
        "YAF_back_PLEASANT_SURPRISE.flac",
    ],
)
def test_pleasant_surprise_aliases(name):
    label = parse_label(name)
    assert label.emotion == "ps"
    assert label.word == "back"


@pytest.mark.parametrize(
    "name",
    ["hello.wav", "OAF_angry.wav", "back_angry", "OAF__angry.wav", "_back_angry.wav", "OAF_back_angry (1).wav", "123_back_angry.wav"],
)
def test_unlabeled_names_raise_naming_the_file(name):
    with pytest.raises(LabelError, match="does not match") as info:
        parse_label(f"some/dir/{name}")
    assert f"some/dir/{name}" in str(info.value)


@pytest.mark.parametrize("emotion", ["bored", "surprise", "calm", "angryy", "pleasant"])
def test_unknown_emotion_raises_naming_file_and_emotion(emotion):
    with pytest.raises(LabelError) as info:
        parse_label(f"corpus/YAF_angry/YAF_back_{emotion}.wav")
    message = str(info.value)
    assert f"corpus/YAF_angry/YAF_back_{emotion}.wav" in message
    assert "unknown emotion" in message
    assert repr(emotion) in message
    for known in EMOTIONS:  # the message lists what is allowed
        assert known in message


def test_label_error_is_a_value_error():
    assert issubclass(LabelError, ValueError)


@pytest.mark.parametrize(
    ("path", "emotion"),
    [
        ("OAF_Fear/OAF_back_angry.wav", "angry"),
        ("TESS/OAF_Pleasant_surprise/OAF_back_sad.wav", "sad"),
        ("YAF_pleasant_surprised/YAF_back_happy.wav", "happy"),
        ("YAF_angry/YAF_back_ps.wav", "ps"),
    ],
)
def test_label_never_comes_from_the_folder(path, emotion):
    assert parse_label(path).emotion == emotion


def test_folder_with_a_label_does_not_rescue_an_unlabeled_file():
    with pytest.raises(LabelError):
        parse_label("OAF_angry/recording.wav")


def test_accepts_path_objects():
    expected = Label("YAF", "germ", "angry")
    assert parse_label(Path("YAF_angry") / "YAF_germ_angry.wav") == expected
    assert parse_label(PurePosixPath("a/YAF_germ_angry.wav")) == expected
    assert parse_label(PureWindowsPath(r"C:\tess\YAF_germ_angry.wav")) == expected
