"""torch and jax: the built-in layers, users' modules, Functions and jax functions, and moving arrays
onto their devices and back. Imported only when a layer comes from one of them."""
