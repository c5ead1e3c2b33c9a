from envspec.cli.main import entry

entry()
