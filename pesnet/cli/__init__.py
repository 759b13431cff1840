"""Command-line interface: ``pesnet COMMAND ...``; one module per command."""
