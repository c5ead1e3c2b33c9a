from envspec.cli import entry

entry()
