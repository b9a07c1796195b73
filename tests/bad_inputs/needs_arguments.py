class Layer:
    def __init__(self, size):
        self.size = size

    def forward(self, x, w, b, **settings):
        return x

    def backward(self, dy, x, w, b, **settings):
        return x, w, b
