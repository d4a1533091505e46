"""What a person sees: rich renderings of results. They compute nothing."""
