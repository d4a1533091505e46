"""The edge: typer commands, the console entry, -h formatting."""
