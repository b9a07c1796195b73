"""tests/implementations/tf_same.py's Keras-style Conv2D, declared one_int as well: padding comes
as the word 'same', one word for every axis, so 'same' cases whose paddings differ per axis run."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tf_same  # noqa: E402

CONVGRAD = {**tf_same.CONVGRAD, "one_int": True}


class Conv2D(tf_same.Conv2D):
    pass
