"""What every call to the layer under test goes through: the guard (exceptions, shapes, NaN,
writes into inputs), the watch over returned buffers, and fresh memory layouts. Used by run/."""
