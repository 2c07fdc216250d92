"""Speech emotion recognition on the Toronto Emotional Speech Set (TESS)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out of logs
