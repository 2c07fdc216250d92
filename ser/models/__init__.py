"""The model families: Keras networks (:mod:`~ser.models.networks`), scikit-learn utterance
classifiers (:mod:`~ser.models.linear`), and the ONNX graph that serves either or an average of
several (:mod:`~ser.models.ensemble`)."""
