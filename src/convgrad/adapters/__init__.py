"""The layer under test as convgrad sees it: the protocol it speaks, what it declares about itself,
the calling styles that make other layers speak the protocol, and how it is loaded from a spec."""
