"""A correct layer that prints at import and on every call, as layers being debugged do."""

from convgrad import reference

print("importing my conv layer")


def forward(x, w, b, **settings):
    print("forward called with", x.shape)
    return reference.forward(x, w, b, **settings)


def backward(dy, x, w, b, **settings):
    print("backward called")
    return reference.backward(dy, x, w, b, **settings)
