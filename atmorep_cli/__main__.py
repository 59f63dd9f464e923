from atmorep_cli.main import run

run()
