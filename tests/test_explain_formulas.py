"""Every formula `convgrad explain` prints, evaluated literally against the reference layer.

The tensors a formula reads (X, K, b, dO, and Xp, S, P, Q, K', dXp, ∂O/∂Xp) are computed here by
the reference's own steps, independently of the formulas; a formula's left side must come out as
the reference's tensor of that name, on random geometries of every kind (groups, depthwise,
stride, dilation, padding on both sides or per side, 1-D to 3-D).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convgrad import reference
from convgrad.explain.formula import Affine, Formula, Read, Term, affine
from convgrad.explain.formulas import layer_formulas
from convgrad.geometry import LayerGeometry, resolve_geometry
from layer_strategies import layers


def reference_tensors(g: LayerGeometry, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x, w, b = rng.standard_normal(g.x_shape), rng.standard_normal(g.w_shape), rng.standard_normal(g.b_shape)
    dy = rng.standard_normal(g.y_shape)
    settings = g.conv_settings()
    reach = [d * (k - 1) for k, d in zip(g.kernel_size, g.dilation)]
    xp = reference.pad(x, g.padding_pairs)
    spread = reference.zero_insert(dy, g.stride, [hp - r for hp, r in zip(g.padded_spatial, reach)])
    full = reference.pad(spread, reach)
    swapped = reference.rotate_and_swap(w, g.groups)
    one = [1] * g.ndim
    dxp = reference.correlate(full, reference.dilate(swapped, g.dilation), stride=one, dilation=one, groups=g.groups)
    # ∂O/∂Xp by linearity: the forward of every unit image of one sample (samples do not mix).
    units = np.eye(int(np.prod(xp.shape[1:]))).reshape(-1, *xp.shape[1:])
    per_unit = reference.forward(units, w, np.zeros(g.filters), stride=g.stride, padding=[0] * g.ndim,
                                 dilation=g.dilation, groups=g.groups)
    one_sample = np.moveaxis(per_unit, 0, -1).reshape(*g.y_shape[1:], *xp.shape[1:])
    jacobian = np.zeros((g.batch, *g.y_shape[1:], g.batch, *xp.shape[1:]))
    for n in range(g.batch):
        jacobian[(n, *[slice(None)] * (len(g.y_shape) - 1), n)] = one_sample
    padded_name = "Xp" if any(g.padding_totals) else "X"
    return {
        "X": x, "K": w, "b": b, "dO": dy, "Xp": xp, "S": spread, "P": full, "K'": swapped, "dXp": dxp,
        "Q": reference.crop(full, g.padding_pairs),
        "O": reference.forward(x, w, b, **settings),
        "dX": reference.crop(dxp, g.padding_pairs),
        "dK": reference.weight_gradient(dy, x, g.kernel_size, **settings),
        "db": reference.bias_gradient(dy),
        f"∂O/∂{padded_name}": jacobian,
    }


def assert_every_formula_holds(g: LayerGeometry) -> None:
    tensors = reference_tensors(g)
    for name, formula in layer_formulas(g).named():
        target = tensors[formula.lhs.tensor]
        got = formula.evaluate(tensors, target.shape)
        assert np.allclose(got, target, rtol=1e-12, atol=1e-12), f"{name}: {formula.text()} ({g.describe()})"


@settings(max_examples=25, deadline=None)
@given(layers("float64"))
def test_every_formula_evaluates_to_the_reference_on_random_layers(geometry):
    assert_every_formula_holds(geometry)


@pytest.mark.parametrize("padding, stride", [("0,1", 1), ("same", 2), ("1,0x0,2", 2)])
def test_every_formula_holds_with_padding_per_side(padding, stride):
    assert_every_formula_holds(resolve_geometry("4x7x8", "4x2x3x3", stride=stride, padding=padding, groups=2, batch=2))


def test_the_groups_example_names_the_channels_of_each_group():
    g = resolve_geometry("4x9x9", "6x2x3x3", stride=2, padding=1, groups=2)
    formulas = layer_formulas(g)
    assert formulas.forward.text() == "O[n,f,i,j] = b[f] + Σ_c' Σ_u,v Xp[n,2g+c',2i+u,2j+v]·K[f,c',u,v]"
    assert formulas.forward.where() == "g = ⌊f/3⌋ (f's group)"
    assert formulas.weights.text() == "dK[f,c',u,v] = Σ_n Σ_i,j dO[n,f,i,j]·Xp[n,2g+c',2i+u,2j+v]"
    assert formulas.swapped_kernels.text() == "K'[c,f',u',v'] = K[3g+f',c',2−u',2−v']"
    assert formulas.swapped_kernels.where() == "g = ⌊c/2⌋ (c's group), c' = c mod 2 (c's place in its group)"
    assert formulas.swapped.text() == "dXp[n,c,y,x] = Σ_f' Σ_u',v' P[n,3g+f',y+u',x+v']·K'[c,f',u',v']"
    assert_every_formula_holds(g)


def test_a_depthwise_layer_has_no_sum_over_a_single_filter():
    g = resolve_geometry("3x6x6", "3x1x3x3", groups=3)
    formulas = layer_formulas(g)
    assert formulas.forward.text() == "O[n,f,i,j] = b[f] + Σ_u,v X[n,f,i+u,j+v]·K[f,0,u,v]"
    assert not formulas.forward.lets and not formulas.swapped.lets  # g = ⌊f/1⌋ would say nothing
    assert formulas.swapped.text() == "dX[n,c,y,x] = Σ_u',v' P[n,c,y+u',x+v']·K'[c,0,u',v']"
    assert_every_formula_holds(g)


# Mistakes a hand-written derivation makes, each a wrong read in step 3 (P times K read back to
# front) of a layer with stride 2, padding 1, dilation 2 and 2 groups of 3 filters.
_FILTER = affine(("g", 3), "f'")
WRONG_READS = {
    "kernel not rotated": Read("K", (_FILTER, affine("c'"), affine("u'"), affine("v'"))),
    "window without the dilation": Read("P", (affine("n"), _FILTER, affine("y", "u'"), affine("x", "v'"))),
    "the filter's place for its index": Read("P", (affine("n"), affine("f'"), affine("y", ("u'", 2)), affine("x", ("v'", 2)))),
}


@pytest.mark.parametrize("mistake", WRONG_READS)
def test_a_wrong_index_is_caught(mistake):
    """The evaluation can fail: with any one read wrong, step 3 is not dXp."""
    g = resolve_geometry("4x9x9", "6x2x3x3", stride=2, padding=1, dilation=2, groups=2)
    tensors = reference_tensors(g)
    rotated = layer_formulas(g).rotated
    term = rotated.terms[0]
    wrong_read = WRONG_READS[mistake]
    factors = tuple(wrong_read if f.tensor == wrong_read.tensor else f for f in term.factors)
    wrong = Formula(rotated.lhs, (Term(term.sums, factors),), rotated.extents, rotated.lets)
    assert np.allclose(rotated.evaluate(tensors, tensors["dXp"].shape), tensors["dXp"])
    assert not np.allclose(wrong.evaluate(tensors, tensors["dXp"].shape), tensors["dXp"])


@pytest.mark.parametrize("parts, text", [
    ((("y", 1), ("u'", 2), ("", -1)), "y+2u'−1"),
    ((("", 2), ("u'", -1)), "2−u'"),
    ((("g", 3), ("f'", 1)), "3g+f'"),
    ((("i", 1), ("u", 0)), "i"),
    ((), "0"),
])
def test_indices_print_as_a_student_writes_them(parts, text):
    assert Affine(parts).text() == text


@given(st.integers(1, 3), st.integers(1, 3))
def test_reads_outside_a_tensor_are_zero(before, after):
    formula = Formula(Read("A", (affine("a", before),)), (Term((), (Read("B", (affine("a"),)),)),), (("a", 4),))
    got = formula.evaluate({"B": np.arange(1.0, 5.0)}, [4 + before + after])
    assert got.tolist() == [0.0] * before + [1.0, 2.0, 3.0, 4.0] + [0.0] * after


GEOMETRIES = [
    ("3x20x20", "5x3x3x3", {}),
    ("4x9x9", "6x2x3x3", dict(stride=2, padding=1, groups=2)),
    ("3x7x8", "6x1x3x2", dict(groups=3, stride="2x1", padding=1, dilation="1x2", batch=2)),
    ("2x4x5x4", "2x2x2x3x2", {}),
    ("2x9", "3x2x3", dict(stride=2, padding="0,1")),
]


@pytest.mark.parametrize("in_shape, kernels, settings", GEOMETRIES)
def test_explain_prints_every_formula_it_evaluates(in_shape, kernels, settings):
    """The formulas tested above are the ones on the screen, each with its lets spelled out."""
    from convgrad.explain import explain
    from convgrad.render.console import make_console
    from convgrad.render.explain import render_explain
    import io

    derivation = explain(resolve_geometry(in_shape, kernels, **settings))
    console = make_console(file=io.StringIO(), width=400, record=True)
    console.print(render_explain(derivation))
    shown = console.export_text(styles=False)
    for name, formula in derivation.formulas.named():
        assert formula.text() in shown, name
        assert not formula.lets or f"where {formula.where()}" in shown, name


@pytest.mark.parametrize("in_shape, kernels, settings", GEOMETRIES)
def test_a_formula_at_one_coordinate_is_that_entry(in_shape, kernels, settings):
    """text_at, as the worked coordinates print it: the substituted formula evaluates to the entry."""
    g = resolve_geometry(in_shape, kernels, **settings)
    tensors = reference_tensors(g)
    rng = np.random.default_rng(1)
    for formula in (layer_formulas(g).swapped, layer_formulas(g).weights, layer_formulas(g).forward):
        extent = dict(formula.extents)
        coordinate = {name: int(rng.integers(extent[name])) for name in formula.free}
        values = dict(coordinate)
        for let in formula.lets:
            values[let.name] = int(let.value({let.of: np.asarray(values[let.of])}))
        at = Formula(formula.lhs.substituted(values), tuple(t.substituted(values) for t in formula.terms),
                     formula.extents)
        assert at.text() == formula.text_at(coordinate)
        target = tensors[formula.lhs.tensor]
        index = tuple(int(i.value(values)) for i in formula.lhs.index)
        assert at.evaluate(tensors, target.shape)[index] == pytest.approx(target[index], rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("in_shape, kernels, settings", GEOMETRIES[1:] + [
    ("2x10", "4x2x3", dict(stride=3, padding=2)),
    ("3x7x8", "4x3x3x3", dict(stride=2, padding="same")),  # TensorFlow's: the odd pixel after
])
def test_the_printed_transposed_convolution_is_dx(in_shape, kernels, settings):
    """torch.nn.functional.conv_transpose{n}d(dO, K, <the keywords explain prints>) is dX."""
    torch = pytest.importorskip("torch")
    from convgrad.explain import explain
    from convgrad.explain.library import transpose_call, transposed_call

    g = resolve_geometry(in_shape, kernels, **settings)
    d = explain(g)
    call = transposed_call(g, d.trailing_zeros)
    assert call is not None and transpose_call(g, d.trailing_zeros) is not None
    function = getattr(torch.nn.functional, f"conv_transpose{g.ndim}d")
    dx = function(torch.from_numpy(d.tensors["dO"]), torch.from_numpy(d.tensors["K"]), **call.arguments).numpy()
    dx = dx[(slice(None), slice(None), *(slice(0, n - c) for n, c in zip(dx.shape[2:], call.crop_after)))]
    np.testing.assert_allclose(dx, d.tensors["dX"], rtol=1e-12, atol=1e-12)


def test_tensorflows_same_at_a_stride_is_a_transposed_call_and_a_crop():
    from convgrad.explain import explain
    from convgrad.explain.library import transpose_call

    g = resolve_geometry("3x7x8", "4x3x3x3", stride=2, padding="same")
    assert transpose_call(g, explain(g).trailing_zeros) == "conv_transpose2d(dO, K, stride=2, padding=(1, 0))[:, :, :, :-1]"


def test_an_output_padding_torch_refuses_has_no_transposed_call():
    """Two more zeros before than after at stride 2 would need output_padding 2, not below the stride."""
    from convgrad.explain.library import transpose_call

    assert transpose_call(resolve_geometry("2x9", "3x2x3", stride=2, padding="2,0"), (0,)) is None


def _entry(formula: Formula, index: tuple[int, ...], tensors: dict[str, np.ndarray]) -> tuple[str, float]:
    """The formula printed at one entry, and its value there, evaluated from the printed structure."""
    coordinate = formula.coordinate_of(index)
    values = dict(coordinate)
    for let in formula.lets:
        values[let.name] = int(let.value({let.of: np.asarray(values[let.of])}))
    at = Formula(formula.lhs.substituted(values), tuple(t.substituted(values) for t in formula.terms), formula.extents)
    return formula.text_at(coordinate), float(at.evaluate(tensors, tensors[formula.lhs.tensor].shape)[index])


@settings(max_examples=15, deadline=None)
@given(layers("float64"))
def test_the_worked_coordinates_are_the_printed_formulas_at_their_index(geometry):
    """What the worked sections print (the formula at the coordinate) is the entry whose products
    they list: its left side is the worked index, and its value their sum."""
    from convgrad.explain import explain

    d = explain(geometry)
    w, k = d.worked, d.weight
    dx_index = (*w.index[:2], *(start for start, _ in w.window)) if d.cropped is not None else w.index
    text, value = _entry(d.formulas.swapped, dx_index, d.tensors)
    assert text.startswith(f"{'dXp' if d.cropped is not None else 'dX'}[{','.join(map(str, dx_index))}] = ")
    assert value == pytest.approx(w.total, rel=1e-12, abs=1e-12)
    text, value = _entry(d.formulas.weights, k.index, d.tensors)
    assert text.startswith(f"dK[{','.join(map(str, k.index))}] = ")
    assert value == pytest.approx(k.total, rel=1e-12, abs=1e-12)


def test_an_entry_the_formula_does_not_write_is_refused():
    g = resolve_geometry("3x6x6", "3x1x3x3", groups=3)
    with pytest.raises(ValueError):
        layer_formulas(g).weights.coordinate_of((0, 1, 1, 1))  # K's depth index is 0 in a depthwise layer
    assert layer_formulas(g).weights.coordinate_of((2, 0, 1, 0)) == {"f": 2, "u": 1, "v": 0}
