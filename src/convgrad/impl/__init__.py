"""The implementation under test: the protocol it speaks, the adapters that make other styles speak
it, how it is loaded from a spec, and the guard every call to it goes through."""
