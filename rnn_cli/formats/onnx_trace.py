"""Placeholder: dynamic state tracing."""


def trace_states(model, units, modules, src) -> None:
    return None
