"""Renderers: reports into tables, summaries, pictures, JSON and JUnit. They read reports (and
explain's derivation) and never compute a number of their own."""
