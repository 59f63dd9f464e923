"""The `atmorep` command line: parse, call the core, render with rich."""
