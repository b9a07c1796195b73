def forward(x, w, b, **settings):
    return x
