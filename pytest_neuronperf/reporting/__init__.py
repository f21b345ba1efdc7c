"""Reports out: console tables, CSV and JSON files."""
