"""Error messages are data that name parameters; each audience reads them in its own words."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from convgrad.cli import CLI
from convgrad.errors import PYTHON, ConvgradError, GeometryError, Parameter, SettingError
from convgrad.geometry import resolve_geometry
from convgrad.suite import TOML


def test_one_message_three_audiences():
    error = SettingError(Parameter("step", -1), " must be greater than 0; use ", Parameter("step", 0.5))
    assert str(error) == error.render(PYTHON) == "step=-1 must be greater than 0; use step=0.5"
    assert error.render(CLI) == "--step -1 must be greater than 0; use --step 0.5"
    assert error.render(TOML) == "step = -1 must be greater than 0; use step = 0.5"
    assert error.parameter == "step"


def test_parameters_named_differently_on_the_command_line_and_in_a_suite_file():
    error = GeometryError(Parameter("kernel_shape", "5x3x3x3"), " or ", Parameter("in_shape"))
    assert error.render(CLI) == "--kernels 5x3x3x3 or --in"
    assert error.render(TOML) == 'kernels = "5x3x3x3" or in'
    assert error.render(PYTHON) == "kernel_shape=5x3x3x3 or in_shape"


def test_the_parameter_survives_a_trip_to_a_child_process_and_back():
    error = GeometryError(Parameter("in_shape", object()), " has 3", parameter="kernel_shape")
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is GeometryError and back.parameter == "kernel_shape" and back.parameters == ("in_shape",)
    assert str(back) == str(error) and str(back).startswith("in_shape=<object object at")


def test_python_callers_of_check_read_keywords_not_flags():
    from convgrad import check

    with pytest.raises(SettingError) as info:
        check(in_shape=(3, 8, 8), kernel_shape=(4, 3, 3, 3), step=-1)
    assert str(info.value).startswith("step=-1 must be a finite number greater than 0")
    assert "--" not in str(info.value)


@given(st.text(max_size=20))
def test_any_text_given_by_the_user_renders_for_every_audience(text):
    for builder in (lambda: resolve_geometry(text, "5x3x3x3"), lambda: resolve_geometry("3x20x20", "5x3x3x3", stride=text)):
        try:
            builder()
        except ConvgradError as error:
            for audience in (PYTHON, CLI, TOML):
                assert "\n" not in error.render(audience)
    error = SettingError(Parameter("impl", text), ": ", text)  # braces never break a message
    assert error.render(PYTHON) == " ".join(f"impl={text}: {text}".split())
